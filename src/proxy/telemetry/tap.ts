// Live tap: subscribers (the admin `GET /tap` stream) receive the metadata of
// each completed exchange that matches their filter: method, authority, path,
// status, timings, byte counts, identities and headers with credentials
// redacted. Bodies are never captured.
//
// Cost when nobody taps: one boolean read (`hub.active`) per request. A
// subscriber that reads too slowly does not slow the proxy: once its backlog
// passes `maxBacklogBytes`, events are dropped and counted, and a
// `{"type":"dropped","count":N}` line precedes the next delivered event.
import type { HeaderList } from '../http/exchange.ts';

export const REDACTED = '[REDACTED]';

const SENSITIVE = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'api-key',
  'x-auth-token',
  'x-csrf-token',
  'x-xsrf-token',
  'x-amz-security-token',
  'x-goog-iap-jwt-assertion',
  'x-forwarded-client-cert',
]);
const SENSITIVE_PART = /token|secret|passw|api[-_]?key|session|credential/;

export function isSensitiveHeader(name: string): boolean {
  return SENSITIVE.has(name) || SENSITIVE_PART.test(name);
}

/** Headers as an object (repeated names joined by ", "), credentials redacted. */
export function redactHeaders(h: HeaderList | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!;
    const v = isSensitiveHeader(name) ? REDACTED : h[i + 1]!;
    out[name] = out[name] === undefined ? v : `${out[name]}, ${v}`;
  }
  return out;
}

export interface TapFilter {
  /** Exact authority (case-insensitive, port ignored when the filter has none). */
  readonly authority?: string;
  readonly pathPrefix?: string;
  readonly method?: string;
  readonly responseCode?: number;
  /** Destination service host or its short name; on the caller's side also
   * the service it addressed (an HTTPRoute's parent), so both sides of a
   * request to `reviews` match `reviews` whichever backend served it. */
  readonly service?: string;
}

export interface TapEvent {
  readonly type: 'exchange';
  readonly time: string;
  readonly direction: string;
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  readonly route: string | null;
  readonly status: number;
  readonly grpc_status: string;
  readonly response_flags: string;
  readonly duration_ms: number;
  readonly bytes_received: number;
  readonly bytes_sent: number;
  readonly source_workload: string;
  readonly source_namespace: string;
  readonly destination_workload: string;
  readonly destination_namespace: string;
  readonly destination_service: string;
  readonly upstream_host: string | null;
  readonly trace_id: string | null;
  /** `x-request-id`: the same on the caller's and the callee's side of one
   * request, so the two views join into one (src/cli/tap-join.ts). */
  readonly request_id: string | null;
  readonly request_headers: Record<string, string>;
  readonly response_headers: Record<string, string>;
}

/** What the hub needs from a subscriber's transport. */
export interface TapSink {
  write(line: string): void;
  /** Bytes written but not yet taken by the consumer. */
  backlog(): number;
}

export interface TapSubscription {
  close(): void;
  dropped(): number;
  delivered(): number;
}

/** The facts a filter needs, read before an event is built. */
export interface TapProbe {
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  readonly status: number;
  readonly service: string;
  /** The service the caller addressed (outbound), else `service`. */
  readonly parent?: string;
}

export function matchesTap(f: TapFilter, p: TapProbe): boolean {
  if (f.method !== undefined && f.method.toUpperCase() !== p.method) return false;
  if (f.responseCode !== undefined && f.responseCode !== p.status) return false;
  if (f.pathPrefix !== undefined && !p.path.startsWith(f.pathPrefix)) return false;
  if (f.authority !== undefined) {
    const want = f.authority.toLowerCase();
    const have = p.authority.toLowerCase();
    if (have !== want && !(want.indexOf(':') < 0 && have.startsWith(`${want}:`))) return false;
  }
  if (f.service !== undefined && !isService(f.service, p.service) && !(p.parent !== undefined && isService(f.service, p.parent))) return false;
  return true;
}

function isService(want: string, host: string): boolean {
  return host === want || host.startsWith(`${want}.`);
}

/** Parse a filter from query parameters; errors name the parameter. */
export function parseTapFilter(q: URLSearchParams): { ok: true; filter: TapFilter } | { ok: false; error: string } {
  const f: { -readonly [K in keyof TapFilter]: TapFilter[K] } = {};
  const authority = q.get('authority');
  const path = q.get('path');
  const method = q.get('method');
  const code = q.get('code');
  const service = q.get('service');
  if (authority) f.authority = authority;
  if (path) {
    if (!path.startsWith('/')) return { ok: false, error: 'path: must start with "/"' };
    f.pathPrefix = path;
  }
  if (method) {
    if (!/^[A-Za-z]+$/.test(method)) return { ok: false, error: 'method: must be an HTTP method name' };
    f.method = method.toUpperCase();
  }
  if (code) {
    const n = Number(code);
    if (!Number.isInteger(n) || n < 100 || n > 599) return { ok: false, error: 'code: must be an HTTP status (100-599)' };
    f.responseCode = n;
  }
  if (service) f.service = service;
  return { ok: true, filter: f };
}

interface Subscriber {
  readonly filter: TapFilter;
  readonly sink: TapSink;
  readonly maxBacklog: number;
  dropped: number;
  pendingDropped: number;
  delivered: number;
}

export class TapHub {
  private readonly subs = new Set<Subscriber>();
  /** True while someone is tapping: the only check on the hot path. */
  active = false;

  subscribe(filter: TapFilter, sink: TapSink, opts: { maxBacklogBytes?: number } = {}): TapSubscription {
    const s: Subscriber = { filter, sink, maxBacklog: opts.maxBacklogBytes ?? 256 * 1024, dropped: 0, pendingDropped: 0, delivered: 0 };
    this.subs.add(s);
    this.active = true;
    return {
      close: () => {
        this.subs.delete(s);
        this.active = this.subs.size > 0;
      },
      dropped: () => s.dropped,
      delivered: () => s.delivered,
    };
  }

  subscribers(): number {
    return this.subs.size;
  }

  /** Offer one completed exchange; `build` runs only if some filter matches. */
  publish(probe: TapProbe, build: () => TapEvent): void {
    let line: string | undefined;
    for (const s of this.subs) {
      if (!matchesTap(s.filter, probe)) continue;
      if (s.sink.backlog() > s.maxBacklog) {
        s.dropped++;
        s.pendingDropped++;
        continue;
      }
      line ??= `${JSON.stringify(build())}\n`;
      if (s.pendingDropped > 0) {
        s.sink.write(`${JSON.stringify({ type: 'dropped', count: s.pendingDropped })}\n`);
        s.pendingDropped = 0;
      }
      s.sink.write(line);
      s.delivered++;
    }
  }
}
