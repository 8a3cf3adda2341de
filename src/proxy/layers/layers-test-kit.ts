// Test-only: a ProxyRequest with a fresh context and a recording handler.
import type { ExchangeController, HeaderList, ProxyRequest, RequestContext, ResponseHandler, ResponseHead } from '../http/exchange.ts';
import type { ProxyError } from '../errors.ts';

export function fakeRequest(headers: HeaderList = [], ctx: Partial<RequestContext> = {}): ProxyRequest {
  return {
    head: { method: 'GET', scheme: 'http', authority: 'svc', path: '/', headers, httpVersion: '1.1' },
    body: null,
    ctx: {
      listener: 'l',
      direction: 'outbound',
      downstream: { remoteAddress: '::ffff:10.1.2.3', remotePort: 5555, localAddress: '127.0.0.1', localPort: 15001 },
      startTime: performance.now(),
      deadline: null,
      responseFlags: [],
      grpc: false,
      attempts: 0,
      attrs: new Map(),
      ...ctx,
    },
  };
}

export interface Recorded {
  handler: ResponseHandler;
  events: string[];
  heads: ResponseHead[];
  errors: ProxyError[];
}

export function recorder(): Recorded {
  const r: Recorded = { events: [], heads: [], errors: [], handler: undefined as unknown as ResponseHandler };
  r.handler = {
    onStart: () => r.events.push('start'),
    onHeaders: (h) => (r.events.push(`headers ${h.status}`), r.heads.push(h), true),
    onData: (c) => (r.events.push(`data ${c.length}`), true),
    onEnd: () => r.events.push('end'),
    onError: (e) => (r.events.push(`error ${e.code}`), r.errors.push(e)),
  };
  return r;
}

export function fakeController(): ExchangeController & { aborted: ProxyError[] } {
  const aborted: ProxyError[] = [];
  return { aborted, resume() {}, abort: (e) => aborted.push(e) };
}
