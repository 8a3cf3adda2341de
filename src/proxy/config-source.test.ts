import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { loadBootstrapFile } from './config/bootstrap.ts';
import { fileConfigSource } from './config-source.ts';
import type { ProxyConfig } from './config/types.ts';

const doc = (port: number): string => `
staticResources:
  clusters:
    - name: c
      type: STATIC
      loadAssignment:
        clusterName: c
        endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: 127.0.0.1, portValue: ${port} } } } }] }]
`;

function setup(t: TestContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-src-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'proxy.yaml');
  writeFileSync(file, doc(1001));
  return file;
}

function initial(file: string) {
  const r = loadBootstrapFile(file);
  assert.ok(r.ok);
  return r.bootstrap;
}

const portOf = (c: ProxyConfig): number | undefined => c.endpoints.get('c')?.[0]?.endpoints[0]?.port;

test('reload publishes only changed content; invalid content is reported and not published', (t) => {
  const file = setup(t);
  const invalid: string[] = [];
  const src = fileConfigSource(file, initial(file), { watch: false, onInvalid: (e) => invalid.push(e) });
  t.after(() => src.close());
  const seen: ProxyConfig[] = [];
  src.onConfig((c) => seen.push(c));
  src.reload('SIGHUP');
  assert.equal(seen.length, 0, 'unchanged file: nothing published');
  writeFileSync(file, doc(1002));
  src.reload('SIGHUP');
  assert.equal(seen.length, 1);
  assert.equal(portOf(seen[0]!), 1002);
  assert.equal(src.lastReason, 'SIGHUP');
  writeFileSync(file, 'staticResources: { clusters: [ { name: 7 } ] }');
  src.reload('SIGHUP');
  assert.equal(seen.length, 1);
  assert.equal(invalid.length, 1);
  assert.match(invalid[0]!, /clusters\[0\]/);
});

test('file changes are watched (also write-then-rename), debounced into one reload', async (t) => {
  const file = setup(t);
  const src = fileConfigSource(file, initial(file), { debounceMs: 50 });
  t.after(() => src.close());
  const next = (): Promise<ProxyConfig> => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no reload within 5 s')), 5000);
    const off = src.onConfig((c) => {
      clearTimeout(timer);
      off();
      resolve(c);
    });
  });
  let p = next();
  writeFileSync(file, doc(2001));
  writeFileSync(file, doc(2002));
  assert.equal(portOf(await p), 2002);
  assert.equal(src.lastReason, 'file_changed');
  p = next();
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, doc(2003));
  renameSync(tmp, file);
  assert.equal(portOf(await p), 2003);
});
