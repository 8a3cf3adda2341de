import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createBalancer } from './balancer.ts';
import { getLbPolicy, lbPolicyNames } from './registry.ts';
import { buildOpts, countPicks, endpoints, seededRandom, ZONE_A } from './testing.ts';

const opts = { ...buildOpts(), localityAware: false, self: ZONE_A };

test('every LbPolicy is registered', () => {
  assert.deepEqual(lbPolicyNames().sort(), ['least_request', 'peak_ewma', 'random', 'ring_hash', 'round_robin', 'weighted_round_robin']);
});

for (const name of lbPolicyNames()) {
  test(`${name}: endpoints come and go; a new picker is published whole`, () => {
    const eps = endpoints(4);
    const b = createBalancer(getLbPolicy(name)!, opts, { all: eps, eligible: eps });
    const first = b.picker();
    assert.equal(b.picker(), first, 'the picker is reused until the set changes');
    const rnd = seededRandom(51);
    const key = (i: number): string => `k${i}`;
    assert.equal([...countPicks(first, eps, 2000, rnd, name === 'ring_hash' ? key : undefined).values()].filter((c) => c > 0).length, 4);
    const removed = eps[2]!;
    const rest = eps.filter((e) => e !== removed);
    b.update({ all: rest, eligible: rest });
    const second = b.picker();
    assert.notEqual(second, first);
    const counts = countPicks(second, rest, 2000, rnd, name === 'ring_hash' ? key : undefined);
    assert.equal(counts.get(removed.key), undefined, 'a removed endpoint is never picked');
    assert.equal([...counts.values()].reduce((a, c) => a + c, 0), 2000);
    b.update({ all: eps, eligible: [] });
    assert.equal(b.pick({ random: rnd }).kind, 'none');
  });
}

test('feedback hooks keep the shared load counters', () => {
  let now = 0;
  const eps = endpoints(2);
  const b = createBalancer(getLbPolicy('peak_ewma')!, { ...opts, now: () => now }, { all: eps, eligible: eps });
  b.onStart(eps[0]!);
  b.onStart(eps[0]!);
  assert.equal(eps[0]!.load.active, 2);
  now = 30;
  b.onEnd(eps[0]!, { latencyMs: 30, ok: true });
  b.onEnd(eps[0]!, { latencyMs: 5, ok: false });
  assert.equal(eps[0]!.load.active, 0);
  assert.equal(eps[0]!.load.ewmaMs, 30);
  assert.deepEqual([eps[0]!.load.successes, eps[0]!.load.failures], [1, 1]);
});
