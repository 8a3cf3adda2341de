// Where the Kubernetes API server is and how to prove who we are to it:
// a kubeconfig file (its current context, or a named one), or the in-cluster
// configuration a Pod gets (KUBERNETES_SERVICE_HOST/PORT and the projected
// ServiceAccount token and CA under /var/run/secrets/kubernetes.io/...).
// Supports what a control plane needs: the server URL, a CA bundle (or
// insecure-skip-tls-verify), client certificates, and bearer tokens (inline or
// a file, read again on every request so a rotated projected token is used).
// exec/auth-provider plugins are not supported and say so by name.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';

export interface KubeConfig {
  /** https://host:port (no trailing slash). */
  server: string;
  /** PEM CA bundle; undefined: the system roots. */
  ca?: string;
  insecureSkipTlsVerify?: boolean;
  cert?: string;
  key?: string;
  /** Returns the bearer token to send now (file-backed tokens are re-read). */
  token?: () => string;
  /** Where it came from, for logs and errors. */
  source: string;
}

export class KubeConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KubeConfigError';
  }
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** In-cluster configuration, as client-go's rest.InClusterConfig. */
export function inClusterConfig(env: NodeJS.ProcessEnv = process.env, saDir = SA_DIR): KubeConfig {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new KubeConfigError('not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT unset): pass --kubeconfig PATH');
  }
  const tokenFile = `${saDir}/token`;
  let ca: string;
  try {
    ca = readFileSync(`${saDir}/ca.crt`, 'utf8');
    readFileSync(tokenFile, 'utf8');
  } catch (err) {
    throw new KubeConfigError(`in-cluster service account credentials unreadable in ${saDir}: ${(err as Error).message}`);
  }
  const h = host.includes(':') ? `[${host}]` : host;
  return { server: `https://${h}:${port}`, ca, token: fileToken(tokenFile), source: 'in-cluster service account' };
}

function fileToken(file: string): () => string {
  return () => readFileSync(file, 'utf8').trim();
}

interface NamedEntry<T> {
  name?: unknown;
  cluster?: T;
  user?: T;
  context?: T;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function pick(list: unknown, name: string, field: 'cluster' | 'user' | 'context', path: string): Obj {
  if (!Array.isArray(list)) throw new KubeConfigError(`${path}: ${field}s: must be a list`);
  const e = (list as NamedEntry<Obj>[]).find((x) => isObj(x) && x.name === name);
  const v = e?.[field];
  if (!isObj(v)) throw new KubeConfigError(`${path}: ${field} "${name}" not found`);
  return v;
}

/** Loads a kubeconfig file: `context` or its current-context. */
export function loadKubeConfig(path: string, opts: { context?: string } = {}): KubeConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new KubeConfigError(`--kubeconfig ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new KubeConfigError(`${path}: not YAML: ${(err as Error).message}`);
  }
  if (!isObj(doc)) throw new KubeConfigError(`${path}: not a kubeconfig (expected a mapping)`);
  const ctxName = opts.context ?? doc['current-context'];
  if (typeof ctxName !== 'string' || ctxName === '') throw new KubeConfigError(`${path}: current-context: is not set (pass a context)`);
  const ctx = pick(doc.contexts, ctxName, 'context', path);
  if (typeof ctx.cluster !== 'string') throw new KubeConfigError(`${path}: context "${ctxName}": cluster: is required`);
  const cluster = pick(doc.clusters, ctx.cluster, 'cluster', path);
  const user = typeof ctx.user === 'string' ? pick(doc.users, ctx.user, 'user', path) : {};
  const base = dirname(path);
  const file = (f: unknown, field: string): string => {
    if (typeof f !== 'string' || f === '') throw new KubeConfigError(`${path}: ${field}: must be a file path`);
    const p = isAbsolute(f) ? f : resolve(base, f);
    try {
      return readFileSync(p, 'utf8');
    } catch (err) {
      throw new KubeConfigError(`${path}: ${field}: ${p}: ${(err as Error).message}`);
    }
  };
  const data = (d: unknown, field: string): string => {
    if (typeof d !== 'string') throw new KubeConfigError(`${path}: ${field}: must be base64 text`);
    return Buffer.from(d, 'base64').toString('utf8');
  };
  const server = cluster.server;
  if (typeof server !== 'string' || !/^https?:\/\//.test(server)) throw new KubeConfigError(`${path}: cluster "${ctx.cluster}": server: must be an http(s) URL`);
  const out: KubeConfig = { server: server.replace(/\/+$/, ''), source: `${path} (context ${ctxName})` };
  if (cluster['certificate-authority-data'] !== undefined) out.ca = data(cluster['certificate-authority-data'], 'certificate-authority-data');
  else if (cluster['certificate-authority'] !== undefined) out.ca = file(cluster['certificate-authority'], 'certificate-authority');
  if (cluster['insecure-skip-tls-verify'] === true) out.insecureSkipTlsVerify = true;
  if (user['client-certificate-data'] !== undefined) out.cert = data(user['client-certificate-data'], 'client-certificate-data');
  else if (user['client-certificate'] !== undefined) out.cert = file(user['client-certificate'], 'client-certificate');
  if (user['client-key-data'] !== undefined) out.key = data(user['client-key-data'], 'client-key-data');
  else if (user['client-key'] !== undefined) out.key = file(user['client-key'], 'client-key');
  if ((out.cert === undefined) !== (out.key === undefined)) throw new KubeConfigError(`${path}: user "${String(ctx.user)}": a client certificate needs its key (and the other way round)`);
  if (typeof user.token === 'string' && user.token !== '') {
    const t = user.token;
    out.token = () => t;
  } else if (user.tokenFile !== undefined) {
    const p = typeof user.tokenFile === 'string' ? (isAbsolute(user.tokenFile) ? user.tokenFile : resolve(base, user.tokenFile)) : '';
    file(p, 'tokenFile');
    out.token = fileToken(p);
  }
  for (const unsupported of ['exec', 'auth-provider', 'username']) {
    if (user[unsupported] !== undefined && out.token === undefined && out.cert === undefined) {
      throw new KubeConfigError(`${path}: user "${String(ctx.user)}": ${unsupported}: is not supported by Trellis; use a client certificate or a token`);
    }
  }
  return out;
}

/** The configuration `--kubernetes` uses, in controller-runtime's order:
 * an explicit kubeconfig, $KUBECONFIG (its first file), in-cluster, ~/.kube/config. */
export function kubeConfigFor(opts: { kubeconfig?: string | undefined; context?: string | undefined }, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const ctx = opts.context === undefined ? {} : { context: opts.context };
  if (opts.kubeconfig) return loadKubeConfig(opts.kubeconfig, ctx);
  const fromEnv = env.KUBECONFIG?.split(':').find((p) => p !== '');
  if (fromEnv) return loadKubeConfig(fromEnv, ctx);
  if (env.KUBERNETES_SERVICE_HOST && opts.context === undefined) return inClusterConfig(env);
  const home = env.HOME ? resolve(env.HOME, '.kube', 'config') : undefined;
  if (home && existsSync(home)) return loadKubeConfig(home, ctx);
  throw new KubeConfigError('no Kubernetes configuration: pass --kubeconfig PATH, set KUBECONFIG, or run in a pod');
}
