// GoldenMetrics over the control plane's HTTP API (/api/v1/metrics/*), for
// the stat/routes/edges/top/tap commands. Commands take a GoldenMetrics, so
// tests run them against a fixed fake.
import type { EdgeRow, GoldenMetrics, StatRow, Topology, Window } from '../control-plane/telemetry/golden.ts';

import { apiFetch } from './api-fetch.ts';
import type { Connection } from './contexts.ts';

export class MetricsApiError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

async function getJson<T>(conn: Connection, path: string, params: Record<string, string | undefined>): Promise<T> {
  const server = conn.server;
  const url = new URL(path, server);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  let res: Response;
  try {
    res = await apiFetch(conn, `${url.pathname}${url.search}`, { signal: AbortSignal.timeout(15_000) });
  } catch (err) {
    const why = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new MetricsApiError('unavailable', `cannot reach the control plane at ${server} (${why}); is \`trellis control-plane\` running? (set --server, TRELLIS_SERVER or --context)`);
  }
  const body = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string } };
  if (!res.ok) throw new MetricsApiError(body.error?.code ?? 'internal', body.error?.message ?? `HTTP ${res.status} from ${url.pathname}`);
  return body as T;
}

export function httpMetrics(target: string | Connection): GoldenMetrics & { targets(): Promise<{ address: string; ok: boolean }[]> } {
  const server: Connection = typeof target === 'string' ? { server: target } : target;
  const list = async <T>(path: string, params: Record<string, string | undefined>): Promise<T[]> => (await getJson<{ items: T[] }>(server, path, params)).items;
  return {
    services: ({ window, namespace }) => list<StatRow>('/api/v1/metrics/services', { window, namespace }),
    workloads: ({ window, namespace }) => list<StatRow>('/api/v1/metrics/workloads', { window, namespace }),
    routes: ({ window, service, namespace }) => list<StatRow>('/api/v1/metrics/routes', { window, service, namespace }),
    edges: ({ window, namespace }) => list<EdgeRow>('/api/v1/metrics/edges', { window, namespace }),
    callers: ({ window, service, namespace }) => list<StatRow>('/api/v1/metrics/callers', { window, service, namespace }),
    topology: ({ window, namespace }) => getJson<Topology>(server, '/api/v1/metrics/topology', { window, namespace }),
    targets: () => list<{ address: string; ok: boolean }>('/api/v1/metrics/targets', {}),
  };
}

export type { Window };
