// gRPC-over-HTTP/2 facts the codecs need, and nothing else: recognising a
// gRPC request, the `grpc-timeout` header (PROTOCOL-HTTP2.md: at most 8
// digits and a unit H M S m u n) and the status trailers. Statuses chosen for
// proxy failures come from errors.ts (`rescue`); this file only encodes.
import { getHeader, type HeaderList } from './http/exchange.ts';
import { encodeGrpcMessage } from './errors.ts';

/** True for `application/grpc`, `application/grpc+proto`,
 * `application/grpc;charset=...` and the gRPC-Web variants
 * (`application/grpc-web`, `application/grpc-web-text`, with `+fmt`): all of
 * them understand a trailers-only response carrying `grpc-status`. */
export function isGrpcContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  return /^application\/grpc(?:-web(?:-text)?)?(?:[+;]|$)/i.test(contentType.trimStart());
}

export function isGrpcRequest(headers: HeaderList): boolean {
  return isGrpcContentType(getHeader(headers, 'content-type'));
}

export type GrpcTimeoutResult =
  | { ok: true; ms: number }
  | { ok: false; error: string };

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** Parse a `grpc-timeout` value ("100m", "5S", "1H"...) into milliseconds. */
export function parseGrpcTimeout(value: string): GrpcTimeoutResult {
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) {
    return { ok: false, error: `grpc-timeout: "${value.slice(0, 32)}" is not 1-8 digits followed by one of H M S m u n` };
  }
  return { ok: true, ms: Number(m[1]) * UNIT_MS[m[2]!]! };
}

const FORMAT_UNITS: ReadonlyArray<readonly [string, number]> = [
  ['u', 1e-3], ['m', 1], ['S', 1000], ['M', 60_000], ['H', 3_600_000],
];

/** Format milliseconds as a `grpc-timeout` value: the finest unit whose
 * value fits in 8 digits, rounded up (a deadline is never shortened by
 * encoding). Whole milliseconds skip the microsecond unit. Negative -> "0m". */
export function formatGrpcTimeout(ms: number): string {
  if (!(ms > 0)) return '0m';
  const units = Number.isInteger(ms) ? FORMAT_UNITS.slice(1) : FORMAT_UNITS;
  for (const [unit, factor] of units) {
    const amount = Math.ceil(ms / factor);
    if (amount <= 99_999_999) return `${amount}${unit}`;
  }
  return '99999999H';
}

/** The deadline a request's `grpc-timeout` asks for, on the
 * performance.now() clock measured from `start`, or null when absent or
 * malformed (a malformed value is forwarded untouched, not enforced). */
export function grpcDeadline(headers: HeaderList, start: number): number | null {
  const v = getHeader(headers, 'grpc-timeout');
  if (v === undefined) return null;
  const r = parseGrpcTimeout(v);
  return r.ok ? start + r.ms : null;
}

/** Trailers that end a gRPC response with `code` (and an optional message). */
export function grpcStatusTrailers(code: number, message?: string, extra: HeaderList = []): HeaderList {
  const t: HeaderList = ['grpc-status', String(code)];
  if (message) t.push('grpc-message', encodeGrpcMessage(message));
  t.push(...extra);
  return t;
}

/** Decode a percent-encoded `grpc-message`. Invalid escapes are kept as-is. */
export function decodeGrpcMessage(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
