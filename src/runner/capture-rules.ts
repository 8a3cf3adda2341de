// The iptables capture of a pod, as data: `trellis run --transparent`
// installs it in its network namespace (transparent.ts) and the Kubernetes
// injector's init container runs the same rules (control-plane/kubernetes/inject.ts).
//   OUTPUT      -p tcp -m owner --uid-owner <proxy uid> -j RETURN   (the proxy's own connections)
//               -p tcp -o lo -d 127.0.0.0/8 -j RETURN               (in-pod loopback)
//               -p tcp -j REDIRECT --to-ports <outbound>
//   PREROUTING  -p tcp --dport <admin> -j RETURN                    (admin and probes reach the proxy)
//               -p tcp -j REDIRECT --to-ports <inbound>

export interface CapturePorts {
  readonly outbound: number;
  readonly inbound: number;
  readonly admin: number;
}

/** The nat-table rules, each the arguments after `iptables -w -t nat`. */
export function captureRules(ports: CapturePorts, proxyUid: number): string[][] {
  for (const [k, v] of Object.entries({ ...ports, proxyUid })) {
    if (!Number.isInteger(v) || v < 0 || v > 65535) throw new Error(`capture rules: ${k} must be an integer 0-65535 (got ${v})`);
  }
  return [
    ['-A', 'OUTPUT', '-p', 'tcp', '-m', 'owner', '--uid-owner', String(proxyUid), '-j', 'RETURN'],
    ['-A', 'OUTPUT', '-p', 'tcp', '-o', 'lo', '-d', '127.0.0.0/8', '-j', 'RETURN'],
    ['-A', 'OUTPUT', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(ports.outbound)],
    ['-A', 'PREROUTING', '-p', 'tcp', '--dport', String(ports.admin), '-j', 'RETURN'],
    ['-A', 'PREROUTING', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(ports.inbound)],
  ];
}

/** The same rules as one shell command line (every argument is a flag or a number: nothing to quote). */
export function captureScript(ports: CapturePorts, proxyUid: number): string {
  return captureRules(ports, proxyUid).map((r) => `iptables -w -t nat ${r.join(' ')}`).join(' && ');
}
