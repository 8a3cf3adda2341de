// A plugin's HTTP call out to a cluster: one request through the cluster's
// dispatch (balancer, circuit breaker, upstream TLS as for routed traffic),
// the response collected whole up to a bound. Never throws: the outcome is a
// tagged result the runtime hands back to the plugin.
import { BufferedBody } from '../layers/mirror.ts';
import type { Dispatch, ExchangeController, HeaderList, ProxyRequest, RequestContext, ResponseHandler, ResponseHead } from '../http/exchange.ts';
import { ProxyError } from '../errors.ts';

export interface HttpCallSpec {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly headers: HeaderList;
  readonly body: Buffer | null;
  readonly timeoutMs: number;
}

export type HttpCallResult = { ok: true; status: number; headers: HeaderList; body: Buffer } | { ok: false; error: string };

export const MAX_HTTP_CALL_RESPONSE = 1024 * 1024;

export function httpCall(dispatch: Dispatch | undefined, cluster: string, spec: HttpCallSpec, parent: Pick<RequestContext, 'listener' | 'direction' | 'downstream'>): Promise<HttpCallResult> {
  if (!dispatch) return Promise.resolve({ ok: false, error: `unknown cluster "${cluster}"` });
  if (!spec.path.startsWith('/')) return Promise.resolve({ ok: false, error: 'path must start with "/"' });
  const now = performance.now();
  const timeoutMs = Math.max(1, Math.min(spec.timeoutMs, 60_000));
  const ctx: RequestContext = {
    ...parent,
    startTime: now,
    deadline: now + timeoutMs,
    responseFlags: [],
    grpc: false,
    cluster,
    attempts: 1,
    attrs: new Map(),
  };
  const req: ProxyRequest = {
    head: { method: spec.method, scheme: 'http', authority: spec.authority, path: spec.path, headers: spec.headers.slice(), httpVersion: '1.1' },
    body: spec.body === null ? null : new BufferedBody(spec.body),
    ctx,
  };
  return new Promise((resolve) => {
    let done = false;
    let controller: ExchangeController | null = null;
    let head: ResponseHead | null = null;
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (r: HttpCallResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => {
      finish({ ok: false, error: `timed out after ${timeoutMs} ms` });
      controller?.abort(new ProxyError('REQUEST_TIMEOUT', 'plugin HTTP call'));
    }, timeoutMs);
    const handler: ResponseHandler = {
      onStart(c) {
        controller = c;
      },
      onHeaders(h) {
        head = h;
        return true;
      },
      onData(chunk) {
        size += chunk.length;
        if (size > MAX_HTTP_CALL_RESPONSE) {
          finish({ ok: false, error: `response larger than ${MAX_HTTP_CALL_RESPONSE} bytes` });
          controller?.abort(new ProxyError('PAYLOAD_TOO_LARGE', 'plugin HTTP call response'));
          return false;
        }
        chunks.push(chunk);
        return true;
      },
      onEnd() {
        finish(head ? { ok: true, status: head.status, headers: head.headers, body: Buffer.concat(chunks) } : { ok: false, error: 'no response' });
      },
      onError(err) {
        finish({ ok: false, error: err?.message ?? 'aborted' });
      },
    };
    try {
      dispatch(req, handler);
    } catch (err) {
      finish({ ok: false, error: (err as Error).message });
    }
  });
}
