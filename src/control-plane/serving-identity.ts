// The control plane's own certificate, from its mesh CA: what the TLS xDS
// port (15012) and the HTTPS API present. Its SANs are the control plane's
// SPIFFE ID, spiffe://<td>/trellis/control-plane (what proxies check: it
// holds whatever address or relay they dial), and its DNS names and IP
// addresses (what browsers and the CLI check): the bind address (every
// interface's for 0.0.0.0 / ::), localhost, the host name, and `--san`.
// A fresh key and certificate at start, again at half its lifetime and
// after a CA rotation; listeners pick the new one up for new handshakes.
import os from 'node:os';
import { isIP } from 'node:net';
import type tls from 'node:tls';
import type { experimental } from '@grpc/grpc-js';
import type { CertificateAuthority, ServingCertificate } from './ca/ca.ts';

export interface ServingSans {
  readonly dnsNames: string[];
  readonly ipAddresses: string[];
}

/** The SANs for a control plane bound to `host`, plus the operator's `extra` (IPs or DNS names). */
export function servingSans(host: string, extra: readonly string[] = []): ServingSans {
  const dns = new Set<string>(['localhost', os.hostname().toLowerCase()]);
  const ips = new Set<string>(['127.0.0.1', '::1']);
  const add = (v: string): void => {
    const bare = v.replace(/^\[|\]$/g, '');
    if (isIP(bare)) ips.add(bare);
    else if (bare !== '') dns.add(bare.toLowerCase());
  };
  if (host === '0.0.0.0' || host === '::') {
    for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) if (!a.address.startsWith('fe80')) ips.add(a.address);
  } else add(host);
  for (const e of extra) add(e);
  return { dnsNames: [...dns].sort(), ipAddresses: [...ips].sort() };
}

export interface ServingIdentity {
  current(): ServingCertificate;
  /** For https.Server / tls.Server#setSecureContext. */
  contextOptions(): tls.SecureContextOptions;
  /** For grpc-js server credentials (one object serves as both the CA and the identity provider). */
  readonly certificateProvider: experimental.CertificateProvider;
  onChange(cb: () => void): () => void;
  /** Issue again now (the CA rotated). */
  refresh(): Promise<void>;
  stop(): void;
}

export async function startServingIdentity(ca: CertificateAuthority, opts: { sans: ServingSans; ttlMs?: number; log?: (m: string) => void }): Promise<ServingIdentity> {
  const log = opts.log ?? (() => {});
  let cert = await ca.issueServingCertificate(opts.sans, opts.ttlMs);
  const listeners = new Set<() => void>();
  const caListeners = new Set<experimental.CaCertificateUpdateListener>();
  const idListeners = new Set<experimental.IdentityCertificateUpdateListener>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const caUpdate = () => ({ caCertificate: Buffer.from(cert.trustBundle) });
  const idUpdate = () => ({ certificate: Buffer.from(cert.certificateChain), privateKey: Buffer.from(cert.privateKeyPem) });
  const publish = (): void => {
    for (const l of caListeners) l(caUpdate());
    for (const l of idListeners) l(idUpdate());
    for (const l of listeners) l();
  };
  const schedule = (): void => {
    clearTimeout(timer);
    if (stopped) return;
    const half = Math.max(1000, (cert.notAfter.getTime() - Date.now()) / 2);
    timer = setTimeout(() => void identity.refresh().catch((err: Error) => log(`serving certificate renewal failed: ${err.message}`)), Math.min(half, 2 ** 31 - 1));
    timer.unref();
  };

  const identity: ServingIdentity = {
    current: () => cert,
    contextOptions: () => ({ key: cert.privateKeyPem, cert: cert.certificateChain, ca: cert.trustBundle }),
    // The first update goes out after the listener is added: grpc-js adds
    // its server's watcher only after registering with the provider, and an
    // update delivered before that leaves the port dropping every connection.
    certificateProvider: {
      addCaCertificateListener(l) {
        caListeners.add(l);
        queueMicrotask(() => caListeners.has(l) && l(caUpdate()));
      },
      removeCaCertificateListener: (l) => void caListeners.delete(l),
      addIdentityCertificateListener(l) {
        idListeners.add(l);
        queueMicrotask(() => idListeners.has(l) && l(idUpdate()));
      },
      removeIdentityCertificateListener: (l) => void idListeners.delete(l),
    },
    onChange(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    async refresh() {
      if (stopped) return;
      cert = await ca.issueServingCertificate(opts.sans, opts.ttlMs);
      publish();
      schedule();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
  schedule();
  return identity;
}
