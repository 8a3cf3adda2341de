// The golden-metrics API, mountable on the control plane's API server
// (`api.addRoutes(metricsRoutes(...))`):
//
//   GET /api/v1/metrics/services?window=1m|5m|15m&namespace=
//   GET /api/v1/metrics/workloads?window=&namespace=
//   GET /api/v1/metrics/routes?service=&namespace=&window=
//   GET /api/v1/metrics/edges?window=&namespace=
//   GET /api/v1/metrics/callers?window=&service=&namespace=   who calls a service (all its workloads together)
//   GET /api/v1/metrics/topology?window=&namespace=
//   GET /api/v1/metrics/targets            scrape status of every proxy (embedded mode)
//   GET /api/v1/metrics/prometheus-sd      the proxies' admin addresses for a real
//        Prometheus (`http_sd_configs`), with __metrics_path__ /stats/prometheus
//   GET /api/v1/metrics/stream?window=     server-sent events: `event: metrics`
//        with {services, edges} after every scrape round (or every `intervalMs`)
//
// List responses are `{window, items: [...]}`; errors use the API's
// `{error: {code, message}}` shape.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiRoute } from '../api/router.ts';
import { apiError, sendError, sendJson } from '../api/http-errors.ts';
import { parseWindow, type GoldenMetrics, type Window } from './golden.ts';
import type { Scraper } from './scraper.ts';

export interface MetricsRoutesOptions {
  readonly metrics: GoldenMetrics;
  /** Embedded mode: target status and one stream event per scrape round. */
  readonly scraper?: Scraper;
  /** Stream period without a scraper (Prometheus mode). Default 5000 ms. */
  readonly intervalMs?: number;
  /** Open streams, so the owner can end them on close. */
  readonly streams?: Set<ServerResponse>;
  /** The proxies' admin addresses (the embedded scraper's targets), for Prometheus service discovery. */
  readonly targets?: () => readonly { readonly address: string }[];
}

export const MAX_STREAM_BACKLOG_BYTES = 1 << 20;

function query(req: IncomingMessage): URLSearchParams {
  return new URL(req.url ?? '/', 'http://localhost').searchParams;
}

function withWindow(req: IncomingMessage, res: ServerResponse, fn: (w: Window, q: URLSearchParams) => Promise<unknown>): Promise<void> {
  const q = query(req);
  const w = parseWindow(q.get('window'));
  if (!w.ok) {
    sendError(res, apiError('bad_request', w.error, { fields: [{ path: 'window', message: w.error }] }));
    return Promise.resolve();
  }
  return fn(w.window, q).then(
    (body) => sendJson(res, 200, body),
    (err: unknown) => sendError(res, apiError('unavailable', `metrics backend: ${(err as Error).message}`)),
  );
}

const opt = (q: URLSearchParams, k: string): string | undefined => q.get(k) || undefined;

export function metricsRoutes(o: MetricsRoutesOptions): ApiRoute[] {
  const m = o.metrics;
  return [
    { method: 'GET', pattern: '/api/v1/metrics/services', handle: (req, res) => withWindow(req, res, async (window, q) => ({ window, items: await m.services({ window, namespace: opt(q, 'namespace') }) })) },
    { method: 'GET', pattern: '/api/v1/metrics/workloads', handle: (req, res) => withWindow(req, res, async (window, q) => ({ window, items: await m.workloads({ window, namespace: opt(q, 'namespace') }) })) },
    {
      method: 'GET',
      pattern: '/api/v1/metrics/routes',
      handle: (req, res) => withWindow(req, res, async (window, q) => ({ window, items: await m.routes({ window, service: opt(q, 'service'), namespace: opt(q, 'namespace') }) })),
    },
    { method: 'GET', pattern: '/api/v1/metrics/edges', handle: (req, res) => withWindow(req, res, async (window, q) => ({ window, items: await m.edges({ window, namespace: opt(q, 'namespace') }) })) },
    {
      method: 'GET',
      pattern: '/api/v1/metrics/callers',
      handle: (req, res) => {
        const service = opt(query(req), 'service');
        if (!service) {
          sendError(res, apiError('bad_request', 'service: is required (the service whose callers to list)', { fields: [{ path: 'service', message: 'is required' }] }));
          return Promise.resolve();
        }
        return withWindow(req, res, async (window, q) => ({ window, items: await m.callers({ window, service, namespace: opt(q, 'namespace') }) }));
      },
    },
    { method: 'GET', pattern: '/api/v1/metrics/topology', handle: (req, res) => withWindow(req, res, async (window, q) => m.topology({ window, namespace: opt(q, 'namespace') })) },
    {
      method: 'GET',
      pattern: '/api/v1/metrics/targets',
      handle: (_req, res) => sendJson(res, 200, { items: o.scraper?.status() ?? [] }),
    },
    {
      method: 'GET',
      pattern: '/api/v1/metrics/prometheus-sd',
      // Prometheus HTTP service discovery: one target group per proxy.
      handle: (_req, res) => sendJson(res, 200, (o.targets?.() ?? []).map((t) => ({ targets: [t.address], labels: { __metrics_path__: '/stats/prometheus' } }))),
    },
    {
      method: 'GET',
      pattern: '/api/v1/metrics/stream',
      handle(req, res) {
        const q = query(req);
        const w = parseWindow(q.get('window'));
        if (!w.ok) return sendError(res, apiError('bad_request', w.error));
        const window = w.window;
        const namespace = opt(q, 'namespace');
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
        res.write(': metrics stream\n\n');
        o.streams?.add(res);
        let busy = false;
        let seq = 0;
        const push = (): void => {
          if (busy || res.writableEnded) return;
          if (res.writableLength > MAX_STREAM_BACKLOG_BYTES) {
            res.destroy(); // a reader this far behind is dropped, not buffered
            return;
          }
          busy = true;
          Promise.all([m.services({ window, namespace }), m.edges({ window, namespace })])
            .then(([services, edges]) => {
              if (!res.writableEnded) res.write(`id: ${++seq}\nevent: metrics\ndata: ${JSON.stringify({ window, at: new Date().toISOString(), services, edges })}\n\n`);
            })
            .catch((err: unknown) => {
              if (!res.writableEnded) res.write(`event: error\ndata: ${JSON.stringify({ message: (err as Error).message })}\n\n`);
            })
            .finally(() => (busy = false));
        };
        let stop: () => void;
        if (o.scraper) stop = o.scraper.onRound(push) as () => void;
        else {
          const t = setInterval(push, o.intervalMs ?? 5_000);
          stop = () => clearInterval(t);
        }
        push();
        res.on('close', () => {
          stop();
          o.streams?.delete(res);
        });
      },
    },
  ];
}
