// A parser for the Prometheus text exposition format (0.0.4), enough for
// what proxies expose: `# HELP`/`# TYPE` lines, samples with labels and an
// optional timestamp. Only the metric families the caller wants are kept
// (a name filter), so a scrape does not allocate for the rest.

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export type ParseResult = { ok: true; samples: Sample[] } | { ok: false; error: string };

/** Parse `text`, keeping samples whose name passes `want`. */
export function parsePrometheusText(text: string, want: (name: string) => boolean = () => true): ParseResult {
  const samples: Sample[] = [];
  let lineNo = 0;
  for (const raw of text.split('\n')) {
    lineNo++;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    let i = 0;
    while (i < line.length && /[a-zA-Z0-9_:]/.test(line[i]!)) i++;
    const name = line.slice(0, i);
    if (name === '') return { ok: false, error: `line ${lineNo}: expected a metric name` };
    if (!want(name)) continue;
    const labels: Record<string, string> = {};
    if (line[i] === '{') {
      i++;
      for (;;) {
        while (line[i] === ' ' || line[i] === ',') i++;
        if (line[i] === '}') {
          i++;
          break;
        }
        const ls = i;
        while (i < line.length && /[a-zA-Z0-9_]/.test(line[i]!)) i++;
        const lname = line.slice(ls, i);
        if (lname === '' || line[i] !== '=' || line[i + 1] !== '"') return { ok: false, error: `line ${lineNo}: malformed label set` };
        i += 2;
        let v = '';
        for (;;) {
          const c = line[i];
          if (c === undefined) return { ok: false, error: `line ${lineNo}: unterminated label value` };
          if (c === '"') {
            i++;
            break;
          }
          if (c === '\\') {
            const n = line[i + 1];
            v += n === 'n' ? '\n' : (n ?? '');
            i += 2;
            continue;
          }
          v += c;
          i++;
        }
        labels[lname] = v;
      }
    }
    const rest = line.slice(i).trim().split(/\s+/);
    const value = parseValue(rest[0] ?? '');
    if (value === undefined) return { ok: false, error: `line ${lineNo}: bad sample value "${rest[0] ?? ''}"` };
    samples.push({ name, labels, value });
  }
  return { ok: true, samples };
}

function parseValue(s: string): number | undefined {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (s === '') return undefined;
  const n = Number(s);
  return Number.isNaN(n) ? undefined : n;
}
