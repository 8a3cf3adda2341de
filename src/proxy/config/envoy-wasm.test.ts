// Strict reading of envoy.filters.http.wasm configs (plugins): runtimes,
// code sources, failure policy and Trellis limits; mistakes name the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Issues, formatFieldError } from './field-error.ts';
import { FieldReader } from './field-reader.ts';
import { readWasmFilter, DEFAULT_HOOK_TIMEOUT_MS } from './envoy-wasm.ts';

function run(json: unknown): { value: ReturnType<typeof readWasmFilter>; errors: string[] } {
  const issues = new Issues();
  const r = FieldReader.of(json, 'f', issues)!;
  r.raw('@type');
  const value = readWasmFilter(r, 'envoy.filters.http.wasm');
  return { value, errors: issues.errors.map(formatFieldError) };
}

const SHA = 'a'.repeat(64);

test('a TypeScript plugin inline, a wasm module by file and by URL with sha256', () => {
  const ts = run({
    config: {
      name: 'guard', rootId: 'r', failurePolicy: 'FAIL_OPEN',
      configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: '{"a":1}' },
      vmConfig: { runtime: 'trellis.plugin.runtime.typescript', code: { local: { inlineString: 'definePlugin(() => ({}))' } },
        configuration: { '@type': 'type.googleapis.com/google.protobuf.Struct', value: { hookTimeout: '0.25s', maxBodyBytes: 1000 } } },
    },
  });
  assert.deepEqual(ts.errors, []);
  assert.equal(ts.value!.runtime, 'typescript');
  assert.equal(ts.value!.name, 'guard');
  assert.equal(ts.value!.failOpen, true);
  assert.equal(ts.value!.configuration, '{"a":1}');
  assert.equal(ts.value!.hookTimeoutMs, 250);
  assert.equal(ts.value!.maxBodyBytes, 1000);
  assert.equal(ts.value!.code.kind, 'inline');

  const file = run({ config: { vm_config: { runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: '/x.wasm' } } } } });
  assert.deepEqual(file.errors, []);
  assert.deepEqual(file.value!.code, { kind: 'file', path: '/x.wasm' });
  assert.equal(file.value!.name, 'envoy.filters.http.wasm', 'the filter name when the plugin has none');
  assert.equal(file.value!.failOpen, false, 'fail-closed by default');
  assert.equal(file.value!.hookTimeoutMs, DEFAULT_HOOK_TIMEOUT_MS);

  const remote = run({ config: { vmConfig: { runtime: 'envoy.wasm.runtime.v8', code: { remote: { httpUri: { uri: 'https://plugins.example/f.wasm', cluster: 'x', timeout: '5s' }, sha256: SHA } } } } });
  assert.deepEqual(remote.errors, []);
  assert.deepEqual(remote.value!.code, { kind: 'remote', uri: 'https://plugins.example/f.wasm', sha256: SHA });
});

test('unknown runtimes, missing code, bad sha256, bad limits and typos are errors naming the field', () => {
  const cases: [unknown, RegExp][] = [
    [{ config: { vmConfig: { runtime: 'envoy.wasm.runtime.null', code: { local: { inlineString: 'x' } } } } }, /f\.config\.vmConfig\.runtime: unsupported runtime "envoy\.wasm\.runtime\.null"/],
    [{ config: { vmConfig: { runtime: 'envoy.wasm.runtime.v8' } } }, /f\.config\.vmConfig\.code/],
    [{ config: { vmConfig: { runtime: 'envoy.wasm.runtime.v8', code: { remote: { httpUri: { uri: 'https://x/y' }, sha256: 'abc' } } } } }, /f\.config\.vmConfig\.code\.remote\.sha256: must be 64 lower-case hex digits/],
    [{ config: { vmConfig: { runtime: 'envoy.wasm.runtime.v8', code: { remote: { httpUri: { uri: 'file:///etc/passwd' }, sha256: SHA } } } } }, /httpUri\.uri: must be an http/],
    [{ config: { failurePolicy: 'FAIL_RELOAD', vmConfig: { runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: '/x' } } } } }, /f\.config\.failurePolicy: must be FAIL_OPEN or FAIL_CLOSED/],
    [{ config: { vmConfig: { runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: '/x' } }, configuration: { '@type': 'type.googleapis.com/google.protobuf.Struct', value: { hookTimeout: '0s' } } } } }, /hookTimeout: must be more than 0s/],
    [{ config: { vmConfig: { runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: '/x' } }, configuration: { '@type': 'type.googleapis.com/google.protobuf.Struct', value: { hookTimout: '1s' } } } } }, /hookTimout/],
    [{ config: { vmConfg: {} } }, /vmConfg/],
    [{}, /f\.config/],
  ];
  for (const [json, want] of cases) {
    const r = run(json);
    assert.equal(r.value, undefined, JSON.stringify(json));
    assert.ok(r.errors.some((e) => want.test(e)), `${JSON.stringify(json)} -> ${JSON.stringify(r.errors)}`);
  }
});
