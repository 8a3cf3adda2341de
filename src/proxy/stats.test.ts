import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry, OVERFLOW_LABEL } from './stats.ts';

test('counter and gauge render in the text exposition format with escaped labels', () => {
  const r = new Registry();
  const c = r.counter('t_requests_total', 'Requests.\nSecond line', ['listener', 'code_class']);
  const child = c.labels('out"bound\\x', '2xx');
  child.inc();
  child.inc(2);
  c.labels('in\nbound', '5xx').inc();
  const g = r.gauge('t_active', 'Active.');
  g.labels().set(7);
  g.labels().dec();
  const text = r.expose();
  assert.match(text, /^# HELP t_requests_total Requests\.\\nSecond line$/m);
  assert.match(text, /^# TYPE t_requests_total counter$/m);
  assert.match(text, /^t_requests_total\{listener="out\\"bound\\\\x",code_class="2xx"\} 3$/m);
  assert.match(text, /^t_requests_total\{listener="in\\nbound",code_class="5xx"\} 1$/m);
  assert.match(text, /^t_active 6$/m);
  assert.ok(text.endsWith('\n'));
});

test('labels() returns the same child for the same values (pre-resolvable)', () => {
  const r = new Registry();
  const c = r.counter('t_total', 'x', ['a']);
  assert.equal(c.labels('1'), c.labels('1'));
  assert.notEqual(c.labels('1'), c.labels('2'));
  assert.throws(() => c.labels('1', '2'), /expected 1 label values/);
});

test('histogram buckets are cumulative with +Inf, sum and count', () => {
  const r = new Registry();
  const h = r.histogram('t_seconds', 'Latency.', ['l'], [0.1, 1]);
  const child = h.labels('x');
  child.observe(0.05);
  child.observe(0.1);
  child.observe(0.5);
  child.observe(3);
  const text = r.expose();
  assert.match(text, /^t_seconds_bucket\{l="x",le="0.1"\} 2$/m);
  assert.match(text, /^t_seconds_bucket\{l="x",le="1"\} 3$/m);
  assert.match(text, /^t_seconds_bucket\{l="x",le="\+Inf"\} 4$/m);
  assert.match(text, /^t_seconds_sum\{l="x"\} 3.65$/m);
  assert.match(text, /^t_seconds_count\{l="x"\} 4$/m);
  assert.throws(() => r.histogram('bad', 'x', [], [1, 1]), /strictly increasing/);
  assert.throws(() => r.histogram('bad2', 'x', ['le']), /reserved/);
});

test('cardinality is bounded: extra series fold into one overflow child', () => {
  const r = new Registry({ maxSeries: 3 });
  const c = r.counter('t_total', 'x', ['k']);
  for (let i = 0; i < 10; i++) c.labels(String(i)).inc();
  assert.equal(c.seriesCount(), 4); // 3 real + 1 overflow
  const text = r.expose();
  assert.match(text, new RegExp(`^t_total\\{k="${OVERFLOW_LABEL}"\\} 7$`, 'm'));
  assert.match(text, /^trellis_stats_overflow_total\{metric="t_total"\} 7$/m);
});

test('re-registering returns the same metric; a conflicting shape is refused; bad names refused', () => {
  const r = new Registry();
  const a = r.counter('t_total', 'x', ['a']);
  assert.equal(r.counter('t_total', 'x', ['a']), a);
  assert.throws(() => r.gauge('t_total', 'x', ['a']), /already registered/);
  assert.throws(() => r.counter('t_total', 'x', ['b']), /already registered/);
  assert.throws(() => r.counter('1bad', 'x'), /not a valid Prometheus name/);
  assert.throws(() => r.counter('ok', 'x', ['__x']), /label name/);
});

test('gauge collectors refresh values at exposition time; remove/removeWhere drop series', () => {
  const r = new Registry();
  const g = r.gauge('t_pool', 'x', ['cluster']);
  let n = 1;
  const off = g.onCollect((gg) => {
    gg.reset();
    gg.labels('a').set(n);
  });
  assert.match(r.expose(), /^t_pool\{cluster="a"\} 1$/m);
  n = 5;
  assert.match(r.expose(), /^t_pool\{cluster="a"\} 5$/m);
  off();
  g.removeWhere('cluster', 'a');
  assert.doesNotMatch(r.expose(), /t_pool\{/);
});
