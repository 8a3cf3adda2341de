import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OutlierDetector, classify } from './outlier-detection.ts';
import { DEFAULT_OUTLIER, type OutlierDetectionSpec } from './config/envoy-resilience.ts';
import { FakeClock } from './layers/fake-clock.ts';

function setup(spec: Partial<OutlierDetectionSpec> = {}, size = 3) {
  const clock = new FakeClock();
  const calls: string[] = [];
  const ejections: number[] = [];
  const d = new OutlierDetector({
    now: clock.now,
    setTimer: clock.setTimer,
    spec: (c) => (c === 'c' ? { ...DEFAULT_OUTLIER, baseEjectionTimeMs: 1000, maxEjectionTimeMs: 2500, intervalMs: 10_000, ...spec } : undefined),
    onEject: (_c, _k, ms) => ejections.push(ms),
  });
  d.attach({ size: () => size, setEjected: (c, k, e) => calls.push(`${c}/${k}=${e}`) });
  return { clock, calls, ejections, d };
}

const fail = { latencyMs: 1, ok: false, status: 503 };
const refused = { latencyMs: 1, ok: false, status: 0, error: 'UPSTREAM_CONNECT_FAILED' };
const ok = { latencyMs: 1, ok: true, status: 200 };

test('outlier: 5 consecutive 5xx eject for baseEjectionTime; a success resets the count', () => {
  const { clock, calls, ejections, d } = setup();
  for (let i = 0; i < 4; i++) d.observe('c', 'a', fail);
  d.observe('c', 'a', ok);
  for (let i = 0; i < 4; i++) d.observe('c', 'a', refused);
  assert.deepEqual(calls, [], 'never 5 in a row');
  d.observe('c', 'a', fail);
  assert.deepEqual(calls, ['c/a=true']);
  assert.deepEqual(ejections, [1000]);
  clock.advance(999);
  assert.equal(d.isEjected('c', 'a'), true);
  clock.advance(1);
  assert.deepEqual(calls, ['c/a=true', 'c/a=false']);
});

test('outlier: half-open return: the first failure re-ejects at once for longer (capped), a success ends probation', () => {
  const { clock, calls, ejections, d } = setup();
  for (let i = 0; i < 5; i++) d.observe('c', 'a', fail);
  clock.advance(1000);
  d.observe('c', 'a', fail);
  assert.equal(d.isEjected('c', 'a'), true, 'one failure on probation is enough');
  assert.deepEqual(ejections, [1000, 2000]);
  clock.advance(2000);
  d.observe('c', 'a', fail);
  assert.deepEqual(ejections, [1000, 2000, 2500], 'capped by maxEjectionTime');
  clock.advance(2500);
  d.observe('c', 'a', ok);
  d.observe('c', 'a', fail);
  assert.equal(d.isEjected('c', 'a'), false, 'probation ended with the success');
  assert.equal(calls.filter((c) => c.endsWith('true')).length, 3);
});

test('outlier: max ejection percent, Envoy style: one host of three at 10%, not two', () => {
  const { d } = setup({ maxEjectionPercent: 10 });
  for (let i = 0; i < 5; i++) d.observe('c', 'a', fail);
  for (let i = 0; i < 5; i++) d.observe('c', 'b', fail);
  assert.equal(d.ejectedCount('c'), 1);
  const big = setup({ maxEjectionPercent: 50 }, 4);
  for (const k of ['a', 'b', 'c']) for (let i = 0; i < 5; i++) big.d.observe('c', k, fail);
  assert.equal(big.d.ejectedCount('c'), 2, '2 of 4 at 50%');
});

test('outlier: gateway-failure detector is off by default (Envoy enforcing 0%); neutral errors do not count', () => {
  const { d } = setup({ consecutive5xx: 100, consecutiveGatewayFailure: 2 });
  for (let i = 0; i < 5; i++) d.observe('c', 'a', refused);
  assert.equal(d.ejectedCount('c'), 0);
  const on = setup({ consecutive5xx: 100, consecutiveGatewayFailure: 2, enforcingConsecutiveGatewayFailure: 100 });
  on.d.observe('c', 'a', refused);
  on.d.observe('c', 'a', { latencyMs: 1, ok: false, status: 0, error: 'DOWNSTREAM_CLOSED' });
  on.d.observe('c', 'a', refused);
  assert.equal(on.d.ejectedCount('c'), 1);
  assert.equal(classify({ latencyMs: 1, ok: false, status: 0, error: 'OVERFLOW' }), 'neutral');
  assert.equal(classify({ latencyMs: 1, ok: false, status: 500 }), '5xx');
  const other = setup();
  for (let i = 0; i < 10; i++) other.d.observe('other', 'a', fail);
  assert.equal(other.d.ejectedCount('other'), 0, 'clusters without outlierDetection are left alone');
});

test('outlier: ejections are re-applied to the next cluster manager after a config swap', () => {
  const { d } = setup();
  for (let i = 0; i < 5; i++) d.observe('c', 'a', fail);
  const calls: string[] = [];
  d.attach({ size: () => 3, setEjected: (c, k, e) => calls.push(`${c}/${k}=${e}`) });
  assert.deepEqual(calls, ['c/a=true']);
});
