// The dashboard's view of the control plane API: typed fetches and a
// server-sent-events hook. Every live view hangs off an SSE stream (metrics
// after each scrape round, resource watch, tap); nothing polls on its own.
import { useEffect, useRef, useState } from 'preact/hooks';

export interface Latency { p50: number | null; p95: number | null; p99: number | null }
export interface StatRow {
  kind: 'service' | 'workload' | 'route';
  name: string;
  namespace: string;
  service?: string;
  /** Routes: the service callers addressed (the route's parent). */
  parent?: string;
  requests: number;
  rps: number;
  successRate: number | null;
  latencyMs: Latency;
  mtlsShare: number | null;
  meshed: number;
  tcpConnections: number;
}
export interface EdgeRow {
  source: { workload: string; namespace: string };
  destination: { workload: string; namespace: string };
  requests: number;
  rps: number;
  successRate: number | null;
  latencyMs: Latency;
  mtlsShare: number | null;
}
export interface MetricsEvent { window: string; at: string; services: StatRow[]; edges: EdgeRow[] }
/** `codes` (requests/s by response class) only on the server's points. */
export interface HistoryPoint { at: number; rps: number; successRate: number | null; p50: number | null; p95: number | null; p99: number | null; codes?: Record<string, number> }

export interface Resource {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string; [k: string]: unknown };
  spec?: Record<string, unknown>;
  status?: unknown;
}
export interface KindInfo { kind: string; apiVersion: string; plural: string; shortNames: string[] }
export interface FieldError { path: string; message: string; text?: string }
export interface ApiErrorBody { code: string; message: string; fields?: FieldError[] }

export type Fetched<T> = { ok: true; value: T } | { ok: false; status: number; error: ApiErrorBody; body: unknown };

/** The CSRF token the server set with the session cookie (control-plane/api/auth.ts). */
function csrfToken(): string | undefined {
  return document.cookie.split(';').map((c) => c.trim()).find((c) => c.startsWith('trellis_csrf='))?.slice('trellis_csrf='.length) || undefined;
}

export async function api<T>(path: string, init: RequestInit = {}): Promise<Fetched<T>> {
  let res: Response;
  try {
    const method = (init.method ?? 'GET').toUpperCase();
    const csrf = method === 'GET' || method === 'HEAD' ? undefined : csrfToken();
    res = await fetch(path, csrf ? { ...init, headers: { ...(init.headers as Record<string, string> | undefined), 'x-trellis-csrf': csrf } } : init);
  } catch (err) {
    return { ok: false, status: 0, error: { code: 'unavailable', message: `control plane unreachable: ${(err as Error).message}` }, body: null };
  }
  const text = await res.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  if (res.ok) return { ok: true, value: body as T };
  const error = (body as { error?: ApiErrorBody } | null)?.error ?? { code: String(res.status), message: typeof body === 'string' ? body : res.statusText };
  return { ok: false, status: res.status, error, body };
}

/** The last value of an SSE event type; reconnects as EventSource does. */
export function useEventStream<T>(url: string | null, event: string, onEvent?: (v: T) => void): { value: T | undefined; connected: boolean } {
  const [value, setValue] = useState<T | undefined>(undefined);
  const [connected, setConnected] = useState(false);
  const cb = useRef(onEvent);
  cb.current = onEvent;
  useEffect(() => {
    if (url === null) return undefined;
    const es = new EventSource(url);
    es.onopen = () => setConnected(true);
    es.onerror = () => setConnected(false);
    es.addEventListener(event, (e) => {
      const v = JSON.parse((e as MessageEvent<string>).data) as T;
      setValue(v);
      cb.current?.(v);
    });
    return () => es.close();
  }, [url, event]);
  return { value, connected };
}

/** A one-shot fetch, re-run when `deps` change. */
export function useFetch<T>(path: string | null, deps: unknown[] = []): { data: T | undefined; error: ApiErrorBody | undefined; reload: () => void } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiErrorBody | undefined>(undefined);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (path === null) return undefined;
    let live = true;
    void api<T>(path).then((r) => {
      if (!live) return;
      if (r.ok) {
        setData(r.value);
        setError(undefined);
      } else setError(r.error);
    });
    return () => {
      live = false;
    };
  }, [path, tick, ...deps]);
  return { data, error, reload: () => setTick((n) => n + 1) };
}

/** The metrics stream (one event per scrape round), shared by the pages. */
export const METRICS_STREAM = '/api/v1/metrics/stream?window=1m';

/** Every object of a kind, kept current by the resource watch. */
export function useWatchedKind(kind: string | null): { items: Resource[]; ready: boolean } {
  const [items, setItems] = useState<Map<string, Resource>>(new Map());
  const [ready, setReady] = useState(false);
  useEffect(() => {
    setItems(new Map());
    setReady(false);
    if (kind === null) return undefined;
    const es = new EventSource(`/api/v1/watch?kind=${encodeURIComponent(kind)}`);
    let pending: Map<string, Resource> | undefined;
    let timer: number | undefined;
    const flush = (): void => {
      timer = undefined;
      if (pending) setItems(new Map(pending));
      setReady(true);
    };
    es.onmessage = (e: MessageEvent<string>) => {
      const ev = JSON.parse(e.data) as { type: string; object: Resource };
      const m = ev.object.metadata;
      const key = `${m.namespace ?? 'default'}/${m.name}`;
      pending ??= new Map();
      if (ev.type === 'DELETED') pending.delete(key);
      else pending.set(key, ev.object);
      timer ??= window.setTimeout(flush, 50);
    };
    es.onopen = () => {
      window.setTimeout(() => setReady(true), 300);
    };
    return () => {
      es.close();
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [kind]);
  return { items: [...items.values()], ready };
}
