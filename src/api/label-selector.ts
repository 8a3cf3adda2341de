// Kubernetes label selectors: `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
// parseLabelSelector returns a matcher or a message saying what is wrong.
import { checkLabelValue, checkQualifiedName } from './validate.ts';

export type Requirement =
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'notexists' };

export interface LabelSelector {
  requirements: Requirement[];
  matches(labels: Record<string, string> | undefined): boolean;
}

export type ParseSelectorResult = { ok: true; selector: LabelSelector } | { ok: false; error: string };

function matcher(requirements: Requirement[]): LabelSelector {
  return {
    requirements,
    matches(labels = {}) {
      return requirements.every((r) => {
        const has = Object.hasOwn(labels, r.key);
        switch (r.op) {
          case 'exists': return has;
          case 'notexists': return !has;
          case 'in': return has && r.values.includes(labels[r.key] ?? '');
          case 'notin': return !has || !r.values.includes(labels[r.key] ?? '');
        }
      });
    },
  };
}

/** Split on commas that are not inside parentheses. */
function splitTop(text: string): string[] | undefined {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (depth < 0 || depth > 1) return undefined;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (depth !== 0) return undefined;
  parts.push(cur);
  return parts;
}

export function parseLabelSelector(text: string): ParseSelectorResult {
  const trimmed = text.trim();
  if (trimmed === '') return { ok: true, selector: matcher([]) };
  const parts = splitTop(trimmed);
  if (!parts) return { ok: false, error: `label selector "${text}": unbalanced parentheses` };
  const reqs: Requirement[] = [];
  for (const raw of parts) {
    const part = raw.trim();
    const bad = (why: string): ParseSelectorResult => ({ ok: false, error: `label selector "${text}": "${part}": ${why}` });
    if (part === '') return bad('empty requirement');
    let m: RegExpMatchArray | null;
    let req: Requirement;
    if ((m = part.match(/^!\s*([^\s=!(),]+)$/))) req = { key: m[1] ?? '', op: 'notexists' };
    else if ((m = part.match(/^([^\s=!(),]+)\s+(in|notin)\s*\(([^()]*)\)$/))) {
      const values = (m[3] ?? '').split(',').map((v) => v.trim());
      if (values.length === 0 || values.some((v) => v === '') && (m[3] ?? '').trim() === '') return bad('a set needs at least one value');
      req = { key: m[1] ?? '', op: m[2] === 'in' ? 'in' : 'notin', values };
    } else if ((m = part.match(/^([^\s=!(),]+)\s*(==|=|!=)\s*([^\s=!(),]*)$/))) {
      req = { key: m[1] ?? '', op: m[2] === '!=' ? 'notin' : 'in', values: [m[3] ?? ''] };
    } else if ((m = part.match(/^([^\s=!(),]+)$/))) req = { key: m[1] ?? '', op: 'exists' };
    else return bad('expected key, !key, key=value, key!=value, key in (a,b) or key notin (a,b)');
    const keyProblem = checkQualifiedName(req.key);
    if (keyProblem) return bad(keyProblem);
    if (req.op === 'in' || req.op === 'notin') {
      for (const v of req.values) {
        const valueProblem = checkLabelValue(v);
        if (valueProblem) return bad(`value "${v}" ${valueProblem}`);
      }
    }
    reqs.push(req);
  }
  return { ok: true, selector: matcher(reqs) };
}

/** A selector from a map (Service.spec.selector): every pair must match. Empty matches nothing. */
export function matchesSelectorMap(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels?.[k] === v);
}
