// Number formatting and the success-rate objective (SLO) shared by the pages.

/** Default success-rate objective; a Service overrides it with this annotation (e.g. "0.995" or "99.5%"). */
export const DEFAULT_SLO = 0.99;
export const SLO_ANNOTATION = 'trellis.dev/slo-success-rate';

export function sloOf(annotations: Record<string, string> | undefined): number {
  const raw = annotations?.[SLO_ANNOTATION];
  if (raw === undefined) return DEFAULT_SLO;
  const pct = raw.trim().endsWith('%');
  const n = Number(raw.trim().replace(/%$/, ''));
  if (!Number.isFinite(n)) return DEFAULT_SLO;
  const v = pct || n > 1 ? n / 100 : n;
  return v > 0 && v <= 1 ? v : DEFAULT_SLO;
}

export const pct = (v: number | null | undefined, digits = 2): string => (v === null || v === undefined ? '–' : `${(v * 100).toFixed(digits)}%`);
export const rps = (v: number | null | undefined): string => (v === null || v === undefined ? '–' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
export const ms = (v: number | null | undefined): string => (v === null || v === undefined ? '–' : v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`);

export type Health = 'good' | 'warn' | 'bad' | 'idle';

/** Below the objective is bad; within half the error budget's distance is a warning. */
export function healthOf(successRate: number | null | undefined, slo = DEFAULT_SLO): Health {
  if (successRate === null || successRate === undefined) return 'idle';
  if (successRate < slo) return 'bad';
  if (successRate < 1 - (1 - slo) / 2) return 'warn';
  return 'good';
}

export const HEALTH_COLOR: Record<Health, string> = { good: '#2e9d5b', warn: '#d49b00', bad: '#d63c3c', idle: '#8a94a6' };

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '–';
  const s = Math.round((now - Date.parse(iso)) / 1000);
  const abs = Math.abs(s);
  const txt = abs < 90 ? `${abs}s` : abs < 5400 ? `${Math.round(abs / 60)}m` : abs < 172800 ? `${Math.round(abs / 3600)}h` : `${Math.round(abs / 86400)}d`;
  return s >= 0 ? `${txt} ago` : `in ${txt}`;
}
