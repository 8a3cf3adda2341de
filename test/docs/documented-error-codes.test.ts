// The proxy error codes the documentation promises are the ones the proxy
// sends: every code shown as `x-trellis-proxy-error: CODE`, or after a status
// the proxy answers with (`504 CODE`, 5xx or 429), in README.md, docs/ and
// examples/ must be in the catalogue (src/proxy/errors.ts) or be one the
// control plane writes as a direct response (egress catch-all, NO_SUCH_PORT,
// MTLS_REQUIRED). (docs/policies.md and two examples said a timeout answers
// UPSTREAM_TIMEOUT; the proxy sends REQUEST_TIMEOUT.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { globSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ERRORS } from '../../src/proxy/errors.ts';
import { EGRESS_DENIED, NO_SUCH_PORT } from '../../src/control-plane/translate/egress.ts';
import { MTLS_REQUIRED } from '../../src/control-plane/translate/mtls.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const KNOWN = new Set<string>([...Object.keys(ERRORS), EGRESS_DENIED, NO_SUCH_PORT, MTLS_REQUIRED]);
const MENTION = /(?:x-trellis-proxy-error:?\s*`?|\b(?:5\d\d|429)\s+`?)([A-Z][A-Z_]{3,})\b/g;

test('every proxy error code named in README.md, docs/ and examples/ is one the proxy sends', () => {
  const files = ['README.md', ...globSync('docs/*.md', { cwd: ROOT }), ...globSync('examples/**/*.{md,yaml}', { cwd: ROOT })].sort();
  const unknown: string[] = [];
  let seen = 0;
  for (const f of files) {
    const text = readFileSync(path.join(ROOT, f), 'utf8');
    for (const m of text.matchAll(MENTION)) {
      seen++;
      if (!KNOWN.has(m[1]!)) unknown.push(`${f}:${text.slice(0, m.index).split('\n').length}: ${m[0]}`);
    }
  }
  assert.ok(seen >= 5, `found only ${seen} mentions: is the pattern still right?`);
  assert.deepEqual(unknown, [], `codes the proxy never sends:\n${unknown.join('\n')}`);
});
