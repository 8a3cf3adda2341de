// The live tap through the control plane, for the dashboard:
//
//   GET /api/v1/tap?service=&path=&method=&code=&authority=
//
// answers server-sent events and fans in the `GET /tap` NDJSON streams of
// every connected proxy's admin listener (the same filters; see
// src/proxy/telemetry/tap.ts). Events: `tap` (one request: the caller's and
// the callee's views joined as in `trellis tap`, src/cli/tap-join.ts, both
// kept as `client` and `server` with the admin address each came from in
// `proxy`), `dropped` ({count}: a proxy or this
// stream shed events for a slow reader), `tap-error` ({proxy, message}). The
// upstream taps close when the browser goes away, so nothing is tapped for
// nobody. A reader more than MAX_TAP_BACKLOG_BYTES behind loses events
// (counted), it is never buffered without bound.
import type { ServerResponse } from 'node:http';
import type { ApiRoute } from '../api/router.ts';
import { apiError, sendError } from '../api/http-errors.ts';
import { parseTapFilter } from '../../proxy/telemetry/tap.ts';
import { openTaps, type TapQuery } from '../../cli/tap-stream.ts';
import { TapJoiner } from '../../cli/tap-join.ts';

export const MAX_TAP_BACKLOG_BYTES = 256 * 1024;
export const TAP_HEARTBEAT_MS = 15_000;

export interface TapRoutesOptions {
  /** Admin addresses (`host:port`) of the proxies to tap. */
  readonly targets: () => readonly string[];
  /** The admin token of the proxy at an address (its /tap needs it). */
  readonly token?: (address: string) => string | undefined;
  /** Open streams, so the owner can end them on close. */
  readonly streams?: Set<ServerResponse>;
}

export function tapRoutes(o: TapRoutesOptions): ApiRoute[] {
  return [
    {
      method: 'GET',
      pattern: '/api/v1/tap',
      handle(req, res) {
        const q = new URL(req.url ?? '/', 'http://localhost').searchParams;
        const f = parseTapFilter(q);
        if (!f.ok) {
          const field = f.error.split(':')[0] ?? 'query';
          return sendError(res, apiError('bad_request', f.error, { fields: [{ path: field, message: f.error }] }));
        }
        const query: TapQuery = {
          service: q.get('service') ?? undefined,
          path: q.get('path') ?? undefined,
          method: q.get('method') ?? undefined,
          code: q.get('code') ?? undefined,
          authority: q.get('authority') ?? undefined,
        };
        const targets = o.targets();
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
        res.write(`event: start\ndata: ${JSON.stringify({ proxies: targets, filter: f.filter })}\n\n`);
        o.streams?.add(res);
        let dropped = 0;
        const send = (event: string, data: unknown): void => {
          if (res.writableEnded || res.destroyed) return;
          if (res.writableLength > MAX_TAP_BACKLOG_BYTES) {
            dropped++;
            return;
          }
          if (dropped > 0) {
            res.write(`event: dropped\ndata: ${JSON.stringify({ count: dropped })}\n\n`);
            dropped = 0;
          }
          res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
        };
        const joiner = new TapJoiner((r) => send('tap', { ...r, proxy: (r.client ?? r.server)?.proxy }));
        const handle = openTaps(targets, query, (line, from) => {
          if (line.type === 'exchange') joiner.add(line, from);
          else if (line.type === 'dropped') send('dropped', { count: line.count, proxy: from });
        }, o.token);
        handle.done.then(({ errors }) => {
          joiner.flush();
          for (const e of errors) send('tap-error', { message: e });
        }, () => {});
        const heartbeat = setInterval(() => {
          if (!res.writableEnded) res.write(': heartbeat\n\n');
        }, TAP_HEARTBEAT_MS);
        res.on('close', () => {
          clearInterval(heartbeat);
          handle.stop();
          o.streams?.delete(res);
        });
      },
    },
  ];
}
