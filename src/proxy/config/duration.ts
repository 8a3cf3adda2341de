// google.protobuf.Duration in its proto3-JSON form ("1.5s", "0.000100s") or
// the object form protobuf decoders emit ({seconds, nanos}, seconds possibly
// a string for int64). Result in milliseconds (fractions kept).

export type DurationResult = { readonly ok: true; readonly ms: number } | { readonly ok: false; readonly message: string };

const DURATION_RE = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;
/** The proto's own bound: ±315,576,000,000 seconds (10,000 years). */
const MAX_SECONDS = 315_576_000_000;

export function parseDuration(value: unknown): DurationResult {
  if (typeof value === 'string') {
    const m = DURATION_RE.exec(value);
    if (!m) return { ok: false, message: `must be a duration string such as "1.5s" or "0.250s" (got ${JSON.stringify(value)})` };
    if (m[1]) return { ok: false, message: 'must not be negative' };
    const seconds = Number(m[2]);
    if (seconds > MAX_SECONDS) return { ok: false, message: 'is out of range' };
    const frac = m[3] ? Number(`0.${m[3]}`) : 0;
    return { ok: true, ms: seconds * 1000 + frac * 1000 };
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const rec = value as Record<string, unknown>;
    for (const k of Object.keys(rec)) {
      if (k !== 'seconds' && k !== 'nanos') return { ok: false, message: `unknown field "${k}" in duration (expected seconds, nanos)` };
    }
    const seconds = toInt(rec.seconds ?? 0);
    const nanos = toInt(rec.nanos ?? 0);
    if (seconds === undefined || nanos === undefined) return { ok: false, message: 'seconds and nanos must be integers' };
    if (seconds < 0 || nanos < 0) return { ok: false, message: 'must not be negative' };
    if (nanos > 999_999_999) return { ok: false, message: 'nanos must be below 1e9' };
    if (seconds > MAX_SECONDS) return { ok: false, message: 'is out of range' };
    return { ok: true, ms: seconds * 1000 + nanos / 1e6 };
  }
  return { ok: false, message: 'must be a duration string such as "1.5s"' };
}

function toInt(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  return undefined;
}

/** Render milliseconds back as a proto3-JSON duration ("1.5s"). */
export function formatDuration(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : Number(s.toFixed(9))}s`;
}
