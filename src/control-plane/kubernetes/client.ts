// A small typed client for the Kubernetes REST API: JSON requests, paginated
// lists, and streaming watches (newline-delimited JSON over one HTTP/1.1
// response, as kubectl --watch reads them). Just what the control plane's
// Kubernetes source needs; docs/kubernetes.md says why this is not
// @kubernetes/client-node. Errors are KubeApiError with the API's own
// Status (code, reason, message); a watch whose resourceVersion is too old
// ends with `expired` (HTTP 410 Gone, or an ERROR event carrying 410), and
// the caller lists again.
import { Agent, request as httpsRequest } from 'node:https';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import type { KubeConfig } from './kubeconfig.ts';

export class KubeApiError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.name = 'KubeApiError';
    this.status = status;
    this.reason = reason;
  }
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

export interface WatchHandlers<T> {
  /** One change, in the API server's order. Return a promise to hold the stream until it settles (backpressure). */
  onEvent(type: WatchEventType, object: T): void | Promise<void>;
  /** The watch ended: `undefined` when the server closed it normally (its timeout), else why. */
  onClose(err?: KubeApiError | Error): void;
}

export interface KubeClient {
  readonly server: string;
  /** JSON request; non-2xx rejects with KubeApiError. */
  request<T>(method: string, path: string, body?: unknown, opts?: { contentType?: string }): Promise<T>;
  /** Every item of a collection, page by page, and the list's resourceVersion. */
  list<T extends KubeObject>(path: string, opts?: { labelSelector?: string; pageSize?: number }): Promise<{ items: T[]; resourceVersion: string }>;
  /** Watch a collection from `resourceVersion` (every change after it). */
  watch<T extends KubeObject>(path: string, opts: { resourceVersion: string; timeoutSeconds?: number }, handlers: WatchHandlers<T>): { cancel(): void };
  close(): void;
}

/** A single watch line longer than this is a broken or hostile server. */
const MAX_LINE_BYTES = 32 * 1024 * 1024;
const REQUEST_TIMEOUT_MS = 30_000;

function statusError(status: number, text: string): KubeApiError {
  try {
    const s = JSON.parse(text) as { kind?: string; reason?: string; message?: string; code?: number };
    if (s && s.kind === 'Status') return new KubeApiError(s.code ?? status, s.reason ?? 'Unknown', s.message ?? text);
  } catch {
    // not a Status
  }
  return new KubeApiError(status, 'Unknown', `HTTP ${status}: ${text.slice(0, 500)}`);
}

export function createKubeClient(config: KubeConfig): KubeClient {
  const url = new URL(config.server);
  const tls = url.protocol === 'https:';
  const agent = tls
    ? new Agent({
      keepAlive: true,
      ...(config.ca === undefined ? {} : { ca: config.ca }),
      ...(config.cert === undefined ? {} : { cert: config.cert, key: config.key }),
      rejectUnauthorized: config.insecureSkipTlsVerify !== true,
    })
    : undefined;
  const base = url.pathname.replace(/\/+$/, '');
  const open = new Set<ClientRequest>();

  function send(method: string, path: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number | undefined, onResponse: (res: IncomingMessage) => void, onError: (err: Error) => void): ClientRequest {
    const token = config.token?.();
    const req = (tls ? httpsRequest : httpRequest)({
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port || (tls ? 443 : 80),
      path: `${base}${path}`,
      method,
      ...(agent ? { agent } : {}),
      headers: {
        accept: 'application/json',
        'user-agent': 'trellis-control-plane',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }),
        ...headers,
      },
    }, onResponse);
    open.add(req);
    req.once('close', () => open.delete(req));
    req.once('error', onError);
    if (timeoutMs !== undefined) req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)));
    req.end(body);
    return req;
  }

  function request<T>(method: string, path: string, body?: unknown, opts: { contentType?: string } = {}): Promise<T> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      send(method, path, text === undefined ? {} : { 'content-type': opts.contentType ?? 'application/json' }, text, REQUEST_TIMEOUT_MS, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('error', reject);
        res.once('end', () => {
          const out = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status < 200 || status > 299) return reject(statusError(status, out));
          try {
            resolve((out === '' ? undefined : JSON.parse(out)) as T);
          } catch (err) {
            reject(new Error(`${method} ${path}: answer is not JSON: ${(err as Error).message}`));
          }
        });
      }, reject);
    });
  }

  async function list<T extends KubeObject>(path: string, opts: { labelSelector?: string; pageSize?: number } = {}): Promise<{ items: T[]; resourceVersion: string }> {
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion = '';
    do {
      const q = new URLSearchParams({ limit: String(opts.pageSize ?? 500) });
      if (opts.labelSelector) q.set('labelSelector', opts.labelSelector);
      if (cont) q.set('continue', cont);
      const page = await request<{ items?: T[]; metadata?: { resourceVersion?: string; continue?: string } }>('GET', `${path}?${q}`);
      items.push(...(page.items ?? []));
      // Every page of one list shares the first page's resourceVersion.
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      cont = page.metadata?.continue || undefined;
    } while (cont);
    return { items, resourceVersion };
  }

  function watch<T extends KubeObject>(path: string, opts: { resourceVersion: string; timeoutSeconds?: number }, handlers: WatchHandlers<T>): { cancel(): void } {
    const q = new URLSearchParams({
      watch: '1',
      resourceVersion: opts.resourceVersion,
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(opts.timeoutSeconds ?? 300),
    });
    let done = false;
    let req: ClientRequest | undefined;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      req?.destroy();
      handlers.onClose(err);
    };
    req = send('GET', `${path}?${q}`, {}, undefined, undefined, (res) => {
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () => finish(statusError(status, Buffer.concat(chunks).toString('utf8'))));
        res.once('error', (e) => finish(e));
        return;
      }
      let buf = '';
      // Lines are handled one at a time: a handler's promise pauses the stream.
      let chain = Promise.resolve();
      let pending = 0;
      const handleLine = async (line: string): Promise<void> => {
        if (done) return;
        let ev: { type?: string; object?: unknown };
        try {
          ev = JSON.parse(line) as typeof ev;
        } catch {
          return finish(new Error(`watch ${path}: unreadable event: ${line.slice(0, 200)}`));
        }
        if (ev.type === 'ERROR') {
          const s = (ev.object ?? {}) as { code?: number; reason?: string; message?: string };
          return finish(new KubeApiError(s.code ?? 500, s.reason ?? 'Unknown', s.message ?? 'watch error'));
        }
        if (ev.type !== 'ADDED' && ev.type !== 'MODIFIED' && ev.type !== 'DELETED' && ev.type !== 'BOOKMARK') return;
        try {
          await handlers.onEvent(ev.type, ev.object as T);
        } catch (err) {
          finish(err as Error);
        }
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        if (buf.length > MAX_LINE_BYTES) return finish(new Error(`watch ${path}: an event longer than ${MAX_LINE_BYTES} bytes`));
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line === '') continue;
          pending++;
          if (pending > 64) res.pause();
          chain = chain.then(() => handleLine(line)).then(() => {
            pending--;
            if (pending <= 16 && res.isPaused() && !done) res.resume();
          });
        }
      });
      res.once('error', (e) => void chain.then(() => finish(e)));
      res.once('end', () => void chain.then(() => finish()));
    }, (err) => finish(err));
    return { cancel: () => { done = true; req?.destroy(); } };
  }

  return {
    server: config.server,
    request,
    list,
    watch,
    close() {
      for (const r of open) r.destroy();
      agent?.destroy();
    },
  };
}
