// Trace context on the wire: W3C `traceparent`/`tracestate` and Zipkin B3, in
// its single-header (`b3`) and multi-header (`x-b3-*`) forms. Pure parsing
// and formatting; tracing.ts decides what to sample and which span id to send.
//
// Read order: traceparent, then b3, then x-b3-*. On the way out the proxy
// always writes `traceparent` (and passes `tracestate` on), and also rewrites
// every B3 form the request carries, so a B3-only application keeps working.
import type { HeaderList } from '../http/exchange.ts';
import { getHeader, removeHeader, setHeader } from '../http/exchange.ts';

export type TraceFormat = 'w3c' | 'b3-single' | 'b3-multi';

export interface TraceParent {
  /** 32 lower-case hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lower-case hex digits, not all zero. */
  readonly spanId: string;
  /** The caller's sampling decision; undefined when B3 deferred it. */
  readonly sampled: boolean | undefined;
  readonly tracestate?: string;
  readonly format: TraceFormat;
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO32 = '0'.repeat(32);
const ZERO16 = '0'.repeat(16);

function validTrace(id: string): boolean {
  return HEX32.test(id) && id !== ZERO32;
}
function validSpan(id: string): boolean {
  return HEX16.test(id) && id !== ZERO16;
}
/** B3 allows 64-bit trace ids; they are left-padded to 128 bits. */
function b3TraceId(id: string): string | undefined {
  const v = id.toLowerCase();
  const padded = v.length === 16 ? ZERO16 + v : v;
  return validTrace(padded) ? padded : undefined;
}

/** `00-<trace>-<span>-<flags>`; future versions are read by the same rules. */
export function parseTraceparent(v: string, tracestate?: string): TraceParent | undefined {
  const parts = v.trim().toLowerCase().split('-');
  if (parts.length < 4) return undefined;
  const [version, traceId, spanId, flags] = parts as [string, string, string, string];
  if (!/^[0-9a-f]{2}$/.test(version) || version === 'ff') return undefined;
  if (version === '00' && parts.length !== 4) return undefined;
  if (!validTrace(traceId) || !validSpan(spanId) || !/^[0-9a-f]{2}$/.test(flags)) return undefined;
  const sampled = (parseInt(flags, 16) & 1) === 1;
  return tracestate ? { traceId, spanId, sampled, tracestate, format: 'w3c' } : { traceId, spanId, sampled, format: 'w3c' };
}

function b3Sampled(s: string | undefined, debug?: string): boolean | undefined {
  if (debug === '1' || s === 'd') return true;
  if (s === '1' || s === 'true') return true;
  if (s === '0' || s === 'false') return false;
  return undefined;
}

/** `b3: <trace>-<span>[-<sampled>[-<parent>]]` (a bare `0` means "do not
 * sample", which carries no ids and yields undefined). */
export function parseB3Single(v: string): TraceParent | undefined {
  const parts = v.trim().split('-');
  if (parts.length < 2) return undefined;
  const traceId = b3TraceId(parts[0]!);
  const spanId = parts[1]!.toLowerCase();
  if (!traceId || !validSpan(spanId)) return undefined;
  return { traceId, spanId, sampled: b3Sampled(parts[2]), format: 'b3-single' };
}

export function parseB3Multi(h: HeaderList): TraceParent | undefined {
  const t = getHeader(h, 'x-b3-traceid');
  const s = getHeader(h, 'x-b3-spanid');
  if (t === undefined || s === undefined) return undefined;
  const traceId = b3TraceId(t.trim());
  const spanId = s.trim().toLowerCase();
  if (!traceId || !validSpan(spanId)) return undefined;
  return { traceId, spanId, sampled: b3Sampled(getHeader(h, 'x-b3-sampled')?.trim(), getHeader(h, 'x-b3-flags')?.trim()), format: 'b3-multi' };
}

/** The incoming trace context, if any (first valid of traceparent, b3, x-b3-*). */
export function extractTraceContext(h: HeaderList): TraceParent | undefined {
  const tp = getHeader(h, 'traceparent');
  if (tp !== undefined) {
    const p = parseTraceparent(tp, getHeader(h, 'tracestate'));
    if (p) return p;
  }
  const b3 = getHeader(h, 'b3');
  if (b3 !== undefined) {
    const p = parseB3Single(b3);
    if (p) return p;
  }
  return parseB3Multi(h);
}

/** A B3 "do not sample" request without ids (`b3: 0` or `x-b3-sampled: 0`). */
export function b3DenyOnly(h: HeaderList): boolean {
  const b3 = getHeader(h, 'b3')?.trim();
  if (b3 === '0') return true;
  return getHeader(h, 'x-b3-traceid') === undefined && getHeader(h, 'x-b3-sampled')?.trim() === '0';
}

export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

/** Write the context the next hop sees: traceparent always (tracestate kept),
 * plus the B3 form the request arrived with, with `spanId` as the new
 * parent. */
export function injectTraceContext(
  h: HeaderList,
  ctx: { traceId: string; spanId: string; sampled: boolean; parentSpanId?: string | undefined },
  incoming: TraceFormat | undefined,
): void {
  setHeader(h, 'traceparent', formatTraceparent(ctx.traceId, ctx.spanId, ctx.sampled));
  // Every B3 form present is rewritten too (an app may forward both), so no
  // hop sees a stale parent whichever format it reads.
  if (incoming === 'b3-single' || getHeader(h, 'b3') !== undefined) {
    setHeader(h, 'b3', `${ctx.traceId}-${ctx.spanId}-${ctx.sampled ? '1' : '0'}${ctx.parentSpanId ? `-${ctx.parentSpanId}` : ''}`);
  }
  if (incoming === 'b3-multi' || getHeader(h, 'x-b3-traceid') !== undefined) {
    setHeader(h, 'x-b3-traceid', ctx.traceId);
    setHeader(h, 'x-b3-spanid', ctx.spanId);
    if (ctx.parentSpanId) setHeader(h, 'x-b3-parentspanid', ctx.parentSpanId);
    else removeHeader(h, 'x-b3-parentspanid');
    setHeader(h, 'x-b3-sampled', ctx.sampled ? '1' : '0');
    removeHeader(h, 'x-b3-flags');
  }
}
