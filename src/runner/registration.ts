// The runner's client for the control plane's workload registry:
// register (-> lease), heartbeat every ttl/3, deregister on exit. Expected
// failures are values; the heartbeat loop re-registers when the control
// plane forgot the lease (404) and keeps trying while it is away.
import { sign } from 'node:crypto';
import { tlsFetch } from '../lib/tls-fetch.ts';
import type { PortProtocol } from '../control-plane/translate/model.ts';

export interface WorkloadRegistration {
  name: string;
  namespace: string;
  serviceAccount: string;
  address: string;
  ports: { port: number; protocol: PortProtocol; name?: string; proxyPort?: number }[];
  labels: Record<string, string>;
  locality: { region?: string; zone?: string; subZone?: string };
}

export type RegistryResult<T> = { ok: true; value: T } | { ok: false; code: 'CP_UNREACHABLE' | 'CP_REJECTED' | 'CP_NOT_FOUND'; status?: number; message: string };

export interface Lease {
  leaseId: string;
  ttlSeconds: number;
}

/** The workload's certificate and key, to sign registry calls with (proof of identity). */
export type WorkloadSigner = () => { certificateChain: string; privateKeyPem: string } | undefined;

export interface RegistryAuth {
  /** An API token (registrar for this identity, or admin). */
  token?: string;
  /** The workload's own certificate: preferred, since it proves the identity (and so mTLS). */
  signer?: WorkloadSigner;
  /** The CA to trust over HTTPS. */
  ca?: string;
}

function authHeader(method: string, url: string, auth: RegistryAuth): Record<string, string> {
  const cert = auth.signer?.();
  if (cert) {
    const date = new Date().toISOString();
    const u = new URL(url);
    const sig = sign('sha256', Buffer.from(`${method.toUpperCase()}\n${u.pathname}${u.search}\n${date}`), cert.privateKeyPem).toString('base64');
    return { authorization: `Trellis-Workload ${Buffer.from(cert.certificateChain).toString('base64')}.${sig}`, 'x-trellis-date': date };
  }
  return auth.token ? { authorization: `Bearer ${auth.token}` } : {};
}

async function call(method: string, url: string, body?: unknown, auth: RegistryAuth = {}, timeoutMs = 5000): Promise<RegistryResult<unknown>> {
  let res: Response;
  const headers = { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...authHeader(method, url, auth) };
  try {
    // Over HTTPS only the mesh CA is trusted (the context's, or the one the join token pins).
    res = url.startsWith('https://') && auth.ca
      ? await tlsFetch(url, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }), ca: auth.ca, timeoutMs })
      : await fetch(url, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
  } catch (err) {
    const c = (err as { cause?: { code?: string; message?: string; errors?: { code?: string }[] } }).cause;
    const why = c?.code ?? c?.errors?.[0]?.code ?? c?.message ?? (err as Error).message;
    return { ok: false, code: 'CP_UNREACHABLE', message: `${method} ${url}: ${why}` };
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  if (res.ok) return { ok: true, value: json };
  const e = typeof json === 'object' && json !== null ? ((json as { error?: { message?: unknown } }).error ?? json) as { message?: unknown } : undefined;
  const msg = e && 'message' in e ? String(e.message) : text.slice(0, 300);
  return { ok: false, code: res.status === 404 ? 'CP_NOT_FOUND' : 'CP_REJECTED', status: res.status, message: `${method} ${url}: ${res.status} ${msg}` };
}

export class RegistryClient {
  readonly base: string;
  readonly #auth: RegistryAuth;

  constructor(apiUrl: string, opts: RegistryAuth = {}) {
    this.base = apiUrl.replace(/\/+$/, '');
    this.#auth = opts;
  }

  #workloadUrl(ns: string, name: string): string {
    return `${this.base}/api/v1/registry/workloads/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
  }

  async register(w: WorkloadRegistration): Promise<RegistryResult<Lease>> {
    const r = await call('POST', `${this.base}/api/v1/registry/workloads`, w, this.#auth);
    if (!r.ok) return r;
    const v = (r.value ?? {}) as { leaseId?: unknown; ttlSeconds?: unknown };
    return { ok: true, value: { leaseId: String(v.leaseId ?? ''), ttlSeconds: typeof v.ttlSeconds === 'number' && v.ttlSeconds > 0 ? v.ttlSeconds : 30 } };
  }

  async heartbeat(ns: string, name: string): Promise<RegistryResult<unknown>> {
    return call('PUT', `${this.#workloadUrl(ns, name)}/heartbeat`, {}, this.#auth);
  }

  async deregister(ns: string, name: string): Promise<RegistryResult<unknown>> {
    const r = await call('DELETE', this.#workloadUrl(ns, name), undefined, this.#auth);
    return !r.ok && r.code === 'CP_NOT_FOUND' ? { ok: true, value: undefined } : r;
  }
}

/** Keeps a registration alive until stopped. */
export function keepRegistered(
  client: RegistryClient,
  w: WorkloadRegistration,
  lease: Lease,
  log: (event: string, fields?: Record<string, unknown>) => void,
): { stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const interval = Math.max(200, Math.floor((lease.ttlSeconds * 1000) / 3));
  const tick = async (): Promise<void> => {
    if (stopped) return;
    const hb = await client.heartbeat(w.namespace, w.name);
    if (!hb.ok && hb.code === 'CP_NOT_FOUND' && !stopped) {
      log('reregister', { reason: hb.message });
      const r = await client.register(w);
      if (!r.ok) log('register_failed', { error: r.message });
    } else if (!hb.ok) {
      log('heartbeat_failed', { error: hb.message });
    }
    if (!stopped) timer = setTimeout(() => void tick(), interval);
  };
  timer = setTimeout(() => void tick(), interval);
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
