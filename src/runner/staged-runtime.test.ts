import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { proxyFiles, stageProxyRuntime, unreachable } from './staged-runtime.ts';

test('what is staged: the proxy\'s code and the packages it imports; no tests, fixtures, type declarations, or packages only others use', () => {
  const rels = proxyFiles().map((f) => f.rel);
  for (const want of ['package.json', 'bin/trellis.ts', 'src/cli/commands/proxy.ts', 'src/xds/envoy-protos.json', 'native/orig-dst/build/Release/orig_dst.node', 'node_modules/yaml/package.json', 'node_modules/@grpc/grpc-js/package.json', 'node_modules/protobufjs/package.json']) {
    assert.ok(rels.includes(want), `${want} is staged`);
  }
  // Imported lazily (tracing) and through a dependency (@grpc/grpc-js -> @js-sdsl/ordered-map).
  assert.ok(rels.some((r) => r.startsWith('node_modules/@opentelemetry/sdk-trace-base/')));
  assert.ok(rels.some((r) => r.startsWith('node_modules/@js-sdsl/ordered-map/')));
  assert.deepEqual(rels.filter((r) => r.endsWith('.test.ts') || r.includes('/fixtures/')), [], 'no tests or test keys');
  assert.deepEqual(rels.filter((r) => /^node_modules\/.*\.([cm]?ts|map)$/.test(r)), [], 'no type declarations or source maps');
  // The proxy writes its CSR itself (identity/csr.ts): no X.509 library in a sidecar.
  for (const pkg of ['node', 'typescript', 'esbuild', 'etcd3', 'cytoscape', 'playwright-core', '@peculiar/x509', 'tslib']) {
    assert.ok(!rels.some((r) => r.startsWith(`node_modules/${pkg}/`)), `${pkg} is not the proxy's`);
  }
});

test('a runtime directory anyone but root could write is refused, naming the directory', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-runtime-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = stageProxyRuntime({ uid: 1337, root: path.join(dir, 'runtime') });
  assert.equal(r.ok, false);
  if (r.ok) return;
  // As root the first offender is the world-writable temporary directory;
  // otherwise the directory itself (not root's).
  const offender = process.getuid?.() === 0 ? `${path.dirname(dir)} is writable by everyone` : 'belongs to uid';
  assert.ok(r.message.includes(offender), r.message);
  assert.match(r.message, /only root may write there/);
  assert.equal(stageProxyRuntime({ uid: 1337, root: 'relative/runtime' }).ok, false);
});

test('unreachable: the first directory a uid may not enter', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-private-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  assert.equal(unreachable(path.join(dir, 'x', 'node'), 1337), `uid 1337 may not enter ${dir} (mode 0700, owner uid ${process.getuid?.()})`);
  assert.equal(unreachable(tmpdir(), 1337), undefined);
});
