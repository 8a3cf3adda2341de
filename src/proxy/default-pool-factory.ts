// The production pool factory: HTTP/1.1 and HTTP/2 upstream pools. Kept apart
// from pool-registry.ts so the registry and clusters depend only on the
// UpstreamPool contract (tests inject fake pools).
import { createHttp1Pool } from './http1/pool.ts';
import { createHttp2Pool } from './http2/pool.ts';
import type { CreatePool } from './pool-registry.ts';

export const defaultPoolFactory: CreatePool = (protocol, opts) =>
  protocol === 'http2' ? createHttp2Pool(opts) : createHttp1Pool(opts);
