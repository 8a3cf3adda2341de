// GET /api/v1/watch?kind=&fromRevision= as server-sent events: one JSON
// event per change, `id:` = the store revision, so a client (EventSource)
// resumes with Last-Event-ID (we continue from id + 1). Without a revision
// the stream starts with ADDED for everything that exists now.
import type { ServerResponse } from 'node:http';
import { resolveKind } from '../../api/kinds.ts';
import type { ResourceService } from '../resources/service.ts';
import { apiError, sendError } from './http-errors.ts';
import type { ApiRoute } from './router.ts';

/** A slow reader is dropped rather than buffered without bound. */
export const MAX_SSE_BUFFER_BYTES = 8 * 1024 * 1024;
export const SSE_HEARTBEAT_MS = 15_000;

export interface WatchRouteOptions {
  /** Open streams, so the server can end them when it closes. */
  streams: Set<ServerResponse>;
  heartbeatMs?: number;
}

export function watchRoute(resources: ResourceService, opts: WatchRouteOptions): ApiRoute {
  return {
    method: 'GET',
    pattern: '/api/v1/watch',
    handle(req, res) {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const kindParam = url.searchParams.get('kind');
      let kind: string | undefined;
      if (kindParam) {
        const def = resolveKind(kindParam);
        if (!def) return sendError(res, apiError('not_found', `unknown kind "${kindParam}"`));
        kind = def.kind;
      }
      const lastId = req.headers['last-event-id'];
      const fromParam = url.searchParams.get('fromRevision');
      let fromRevision: number | undefined;
      if (typeof lastId === 'string' && /^[0-9]+$/.test(lastId)) fromRevision = Number(lastId) + 1;
      else if (fromParam !== null) {
        if (!/^[0-9]+$/.test(fromParam)) return sendError(res, apiError('bad_request', 'fromRevision must be a non-negative integer', { fields: [{ path: 'fromRevision', message: 'must be a non-negative integer' }] }));
        fromRevision = Number(fromParam);
      }
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      res.write('retry: 2000\n\n');
      opts.streams.add(res);
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        watch.cancel();
        clearInterval(heartbeat);
        opts.streams.delete(res);
        if (!res.writableEnded) res.end();
      };
      const write = (chunk: string) => {
        if (closed) return;
        if (res.writableLength > MAX_SSE_BUFFER_BYTES) {
          close();
          return;
        }
        res.write(chunk);
      };
      const watch = resources.watch(kind, fromRevision === undefined ? {} : { fromRevision }, {
        onEvent(ev) {
          write(`id: ${ev.revision}\ndata: ${JSON.stringify(ev)}\n\n`);
        },
        onError(err) {
          const code = err.code === 'compacted' ? 'compacted' : 'unavailable';
          write(`event: error\ndata: ${JSON.stringify({ error: { code, message: err.message } })}\n\n`);
          close();
        },
      });
      const heartbeat = setInterval(() => write(': keepalive\n\n'), opts.heartbeatMs ?? SSE_HEARTBEAT_MS);
      heartbeat.unref();
      res.on('close', close);
    },
  };
}
