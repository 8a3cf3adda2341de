// A real Kubernetes API server for tests, as controller-runtime's envtest
// runs one: etcd + kube-apiserver (built by scripts/kube-binaries.sh from
// test/kube/build/go.mod, cached outside the repository) on 127.0.0.1 with
// free ports, a fresh PKI in a 0700 temp dir (a CA, the server's certificate
// for 127.0.0.1/localhost, an admin client certificate in system:masters),
// a generated ServiceAccount signing key, and a kubeconfig for kubectl and
// `trellis control-plane --kubernetes`. No kubelet, scheduler or controller
// manager: tests create Pods and set their status as a kubelet would.
//
//   const kube = await startKubeCluster();   // readyz answered ok
//   await kube.kubectl(['apply', '-f', file]);
//   await kube.stop();                        // kills both, removes the dir
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { request } from 'node:https';
import * as x509 from '../../src/lib/x509.ts';
import { freePort, startEtcd, type EtcdServer } from '../util/etcd.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const BUILD_MOD = join(ROOT, 'test', 'kube', 'build', 'go.mod');
const KUBECTL = '/usr/bin/kubectl';

export interface KubeBinaries {
  kubeVersion: string;
  etcdVersion: string;
  gatewayApiVersion: string;
  apiserver: string;
  etcd: string;
  /** The upstream Gateway API CRDs (config/crd/standard), one YAML file per kind. */
  gatewayApiCrds: string;
}

/** The versions test/kube/build/go.mod pins and where scripts/kube-binaries.sh caches their builds. */
export function kubeBinaries(): KubeBinaries {
  const mod = readFileSync(BUILD_MOD, 'utf8');
  const version = (m: string): string => {
    const re = new RegExp(`^\\s*(?:require\\s+)?${m.replaceAll('.', '\\.')}\\s+(v\\S+)`, 'm');
    const v = re.exec(mod)?.[1];
    if (!v) throw new Error(`${BUILD_MOD}: no version for ${m}`);
    return v;
  };
  const cache = process.env.TRELLIS_TEST_CACHE ?? join(homedir(), '.cache', 'trellis-test');
  const kubeVersion = version('k8s.io/kubernetes');
  const etcdVersion = version('go.etcd.io/etcd/server/v3');
  const gatewayApiVersion = readFileSync(join(ROOT, 'test', 'kube', 'build', 'gateway-api.version'), 'utf8').trim();
  return {
    kubeVersion, etcdVersion, gatewayApiVersion,
    apiserver: join(cache, `kube-${kubeVersion}`, 'kube-apiserver'),
    etcd: join(cache, `etcd-${etcdVersion}`, 'etcd'),
    gatewayApiCrds: join(cache, `gateway-api-${gatewayApiVersion}`),
  };
}

let missing: string | null | undefined;

/** null when the binaries are there (building them first if Go is here), else why the tests skip. */
export function kubeMissingReason(): string | null {
  if (missing !== undefined) return missing;
  const b = kubeBinaries();
  const present = () => existsSync(b.apiserver) && existsSync(b.etcd) && existsSync(b.gatewayApiCrds);
  if (!present()) {
    // Only the first run on a machine builds (10-20 min); .ci/run does it before the tests.
    console.log(`# building kube-apiserver ${b.kubeVersion} and etcd ${b.etcdVersion}, fetching the Gateway API ${b.gatewayApiVersion} CRDs (scripts/kube-binaries.sh)`);
    const r = spawnSync('bash', [join(ROOT, 'scripts', 'kube-binaries.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) return (missing = `scripts/kube-binaries.sh failed (exit ${r.status ?? r.signal})`);
  }
  missing = present() ? null : `no kube-apiserver/etcd/Gateway API CRDs at ${b.apiserver}, ${b.etcd}, ${b.gatewayApiCrds}, and no Go toolchain to build them (scripts/kube-binaries.sh)`;
  if (missing === null && !existsSync(KUBECTL)) missing = `no kubectl at ${KUBECTL} (apt-get install kubernetes-client)`;
  return missing;
}

export interface KubeCluster {
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** A kubeconfig with the admin client certificate (context "trellis-test"). */
  readonly kubeconfig: string;
  readonly dir: string;
  /** PEM: the CA the server's and the admin's certificates chain to. */
  readonly ca: string;
  readonly etcd: EtcdServer;
  /** kubectl against this cluster; resolves with its exit code and output (never rejects on a non-zero exit). */
  kubectl(args: string[], opts?: { input?: string }): Promise<{ code: number; stdout: string; stderr: string }>;
  /** A JSON request as the admin (for what kubectl cannot do, like writing pod status). */
  api<T = unknown>(method: string, path: string, body?: unknown, contentType?: string): Promise<{ status: number; body: T }>;
  /** Install upstream Gateway API CRDs (e.g. 'httproutes') and wait until they are served. */
  installGatewayApiCrds(plurals: string[]): Promise<void>;
  /** Kill kube-apiserver (SIGKILL: every watch drops) and start it again on the same port and etcd. */
  restartApiServer(): Promise<void>;
  stop(): Promise<void>;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

async function keyPair(): Promise<{ keys: CryptoKeyPair; pem: string }> {
  const keys = (await crypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const pem = x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
  return { keys, pem };
}

async function pki(): Promise<{ ca: string; serverCert: string; serverKey: string; adminCert: string; adminKey: string }> {
  const now = Date.now();
  const validity = { notBefore: new Date(now - 60_000), notAfter: new Date(now + 24 * 3600_000) };
  const ca = await keyPair();
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: 'CN=trellis-test-kube-ca', ...validity, keys: ca.keys, signingAlgorithm: EC,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  const leaf = async (serial: string, subject: string, usage: string, sans?: x509.JsonGeneralNames) => {
    const k = await keyPair();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial, subject, issuer: caCert.subject, ...validity, publicKey: k.keys.publicKey, signingKey: ca.keys.privateKey, signingAlgorithm: EC,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([usage]),
        ...(sans ? [new x509.SubjectAlternativeNameExtension(sans)] : []),
      ],
    });
    return { cert: cert.toString('pem'), key: k.pem };
  };
  const server = await leaf('02', 'CN=kube-apiserver', x509.ExtendedKeyUsage.serverAuth, [
    { type: 'ip', value: '127.0.0.1' }, { type: 'dns', value: 'localhost' }, { type: 'dns', value: 'kubernetes.default.svc' },
  ]);
  const admin = await leaf('03', 'CN=trellis-test-admin, O=system:masters', x509.ExtendedKeyUsage.clientAuth);
  return { ca: caCert.toString('pem'), serverCert: server.cert, serverKey: server.key, adminCert: admin.cert, adminKey: admin.key };
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

export async function startKubeCluster(): Promise<KubeCluster> {
  const reason = kubeMissingReason();
  if (reason) throw new Error(reason);
  const bins = kubeBinaries();
  const dir = mkdtempSync(join(tmpdir(), 'trellis-kube-'));
  chmodSync(dir, 0o700);
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  let etcd: EtcdServer | undefined;
  let proc: ChildProcess | undefined;
  let output = '';
  try {
    const p = await pki();
    const sa = generateKeyPairSync('ec', { namedCurve: 'P-256', publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    const files = {
      ca: file('ca.crt', p.ca),
      serverCert: file('apiserver.crt', p.serverCert),
      serverKey: file('apiserver.key', p.serverKey),
      saPub: file('sa.pub', sa.publicKey),
      saKey: file('sa.key', sa.privateKey),
    };
    etcd = await startEtcd({ binary: bins.etcd });
    const port = await freePort();
    const server = `https://127.0.0.1:${port}`;
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const kubeconfig = file('kubeconfig', [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: trellis-test',
      '  cluster:',
      `    server: ${server}`,
      `    certificate-authority-data: ${b64(p.ca)}`,
      'users:',
      '- name: admin',
      '  user:',
      `    client-certificate-data: ${b64(p.adminCert)}`,
      `    client-key-data: ${b64(p.adminKey)}`,
      'contexts:',
      '- name: trellis-test',
      '  context: {cluster: trellis-test, user: admin}',
      'current-context: trellis-test',
      '',
    ].join('\n'));
    const args = [
      `--etcd-servers=${etcd.endpoint}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--tls-cert-file=${files.serverCert}`,
      `--tls-private-key-file=${files.serverKey}`,
      `--client-ca-file=${files.ca}`,
      `--service-account-key-file=${files.saPub}`,
      `--service-account-signing-key-file=${files.saKey}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      // Only numbers in the API: nothing routes to them (no kube-proxy here).
      '--service-cluster-ip-range=10.96.0.0/16',
      '--authorization-mode=RBAC',
      '--allow-privileged=true',
      '--profiling=false',
      '--v=1',
    ];
    const launch = (): ChildProcess => {
      const child = spawn(bins.apiserver, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      proc = child;
      running.add(child);
      child.once('exit', () => running.delete(child));
      const keep = (d: Buffer) => {
        output = (output + d.toString('utf8')).slice(-20_000);
      };
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      return child;
    };

    const api = <T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: T }> =>
      new Promise((resolveReq, reject) => {
        const text = body === undefined ? undefined : JSON.stringify(body);
        const req = request(`${server}${path}`, {
          method, ca: p.ca, cert: p.adminCert, key: p.adminKey,
          headers: { accept: 'application/json', ...(text === undefined ? {} : { 'content-type': contentType }) },
          timeout: 30_000,
        }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.once('end', () => {
            const out = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = out;
            try {
              parsed = JSON.parse(out);
            } catch {
              // text (readyz)
            }
            resolveReq({ status: res.statusCode ?? 0, body: parsed as T });
          });
          res.once('error', reject);
        });
        req.once('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
        req.once('error', reject);
        req.end(text);
      });

    // Ready: every post-start hook done, and the default namespace created.
    const ready = async (child: ChildProcess): Promise<void> => {
      const deadline = Date.now() + 90_000;
      for (;;) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`kube-apiserver exited (${child.exitCode ?? child.signalCode}): ${output.slice(-3000)}`);
        const ok = await api('GET', '/readyz').then((r) => r.status === 200, () => false)
          && await api('GET', '/api/v1/namespaces/default').then((r) => r.status === 200, () => false);
        if (ok) return;
        if (Date.now() > deadline) throw new Error(`kube-apiserver not ready after 90 s: ${output.slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    await ready(launch());

    const etcdServer = etcd;
    const kubectl = (args: string[], opts: { input?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> =>
      new Promise((res) => {
        const k = spawn(KUBECTL, ['--kubeconfig', kubeconfig, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        k.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
        k.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
        const timer = setTimeout(() => k.kill('SIGKILL'), 60_000);
        k.once('close', (code) => {
          clearTimeout(timer);
          res({ code: code ?? -1, stdout, stderr });
        });
        k.stdin.end(opts.input ?? '');
      });
    let stopped = false;
    return {
      server,
      kubeconfig,
      dir,
      ca: p.ca,
      etcd: etcdServer,
      api,
      kubectl,
      async installGatewayApiCrds(plurals) {
        for (const plural of plurals) {
          const file = join(bins.gatewayApiCrds, `gateway.networking.k8s.io_${plural}.yaml`);
          // Server-side: the CRDs are larger than client-side apply's annotation limit.
          const r = await kubectl(['apply', '--server-side', '-f', file]);
          if (r.code !== 0) throw new Error(`installing ${file}: ${r.stderr}`);
          // Polled here: `kubectl wait` fails at once while the CRD has no conditions yet.
          const deadline = Date.now() + 60_000;
          for (;;) {
            const crd = await api<{ status?: { conditions?: { type: string; status: string }[] } }>('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${plural}.gateway.networking.k8s.io`);
            if (crd.body.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
            if (Date.now() > deadline) throw new Error(`CRD ${plural} not established after 60 s: ${JSON.stringify(crd.body.status)}`);
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      },
      async restartApiServer() {
        await stopProcess(proc!, 'SIGKILL');
        await ready(launch());
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await stopProcess(proc!);
        await etcdServer.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (proc) await stopProcess(proc);
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function stopProcess(p: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill(signal);
  const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
