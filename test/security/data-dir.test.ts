// The control plane's data directory holds the mesh CA's private keys (in the
// database): 0700 for the directory, 0600 for its files, and modes found more
// open (an older version made them 0755 / 0644) are tightened with a warning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openSqliteStore } from '../../src/control-plane/store/sqlite.ts';

const mode = (p: string) => (statSync(p).mode & 0o777).toString(8);

test('a new data directory is 0700 and the database, WAL and lock files 0600', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'trellis-dd-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const dir = path.join(root, 'data');
  const warnings: string[] = [];
  const store = await openSqliteStore(dir, { warn: (m) => warnings.push(m) });
  await store.put('/k', 'v');
  assert.equal(mode(dir), '700');
  const files = readdirSync(dir);
  assert.ok(files.includes('trellis.db') && files.includes('trellis.lock') && files.includes('trellis.db-wal'), files.join(','));
  for (const f of files) assert.equal(mode(path.join(dir, f)), '600', f);
  await store.close();
  assert.deepEqual(warnings, []);
});

test('an existing directory and files with open modes are tightened at start, with a warning each', async (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'trellis-dd-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const dir = path.join(root, 'data');
  const first = await openSqliteStore(dir);
  await first.put('/k', 'v');
  await first.close();
  chmodSync(dir, 0o755);
  chmodSync(path.join(dir, 'trellis.db'), 0o644);
  writeFileSync(path.join(dir, 'notes.txt'), 'x', { mode: 0o666 });
  chmodSync(path.join(dir, 'notes.txt'), 0o666);
  mkdirSync(path.join(dir, 'sub'), { mode: 0o755 });
  const warnings: string[] = [];
  const store = await openSqliteStore(dir, { warn: (m) => warnings.push(m) });
  t.after(() => store.close());
  assert.equal(mode(dir), '700');
  assert.equal(mode(path.join(dir, 'trellis.db')), '600');
  assert.equal(mode(path.join(dir, 'notes.txt')), '600');
  assert.equal((await store.get('/k'))?.value, 'v');
  assert.equal(warnings.length, 3, warnings.join('\n'));
  assert.match(warnings[0]!, /data directory .*data was mode 0755; set to 0700/);
  assert.ok(warnings.some((w) => /trellis\.db was mode 0644; set to 0600/.test(w)));
});
