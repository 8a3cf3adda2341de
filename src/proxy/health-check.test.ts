import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HealthChecker, combinedHealth, type ProbeResult } from './health-check.ts';
import type { HealthCheckSpec } from './config/envoy-resilience.ts';
import type { HealthStatus, ProxyConfig } from './config/types.ts';

const spec: HealthCheckSpec = { kind: 'tcp', intervalMs: 5, timeoutMs: 100, unhealthyThreshold: 2, healthyThreshold: 3, path: '/', expectedStatuses: [[200, 201]] };

function config(health: HealthStatus = 'unknown'): ProxyConfig {
  return {
    version: 'v',
    listeners: [],
    routeConfigs: new Map(),
    clusters: new Map([['c', {} as never]]),
    endpoints: new Map([['c', [{ locality: { region: '', zone: '', subZone: '' }, priority: 0, weight: 1, endpoints: [{ address: '10.0.0.1', port: 80, weight: 1, health }] }]]]),
  };
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) assert.fail('condition not reached in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

test('health checks: thresholds move an endpoint out and back in; verdicts reach the cluster', async (t) => {
  const script: boolean[] = [true, false, false, false, true, true, true];
  let probes = 0;
  const set: string[] = [];
  const hc = new HealthChecker({
    specs: () => [spec],
    probe: async (): Promise<ProbeResult> => {
      const ok = script[Math.min(probes, script.length - 1)]!;
      probes++;
      return ok ? { ok: true } : { ok: false, reason: 'scripted' };
    },
  });
  t.after(() => hc.stop());
  hc.sync(config(), { setHealth: (c, k, h) => set.push(`${c}/${k}=${h}`) });
  await until(() => probes >= script.length);
  hc.stop();
  assert.deepEqual(set, ['c/10.0.0.1:80=healthy', 'c/10.0.0.1:80=unhealthy', 'c/10.0.0.1:80=healthy'], 'first success -> healthy; 2 failures -> unhealthy; 3 successes -> healthy');
});

test('health checks: the registry\'s unhealthy/draining win over a passing probe', () => {
  assert.equal(combinedHealth('unhealthy', true), 'unhealthy');
  assert.equal(combinedHealth('draining', true), 'draining');
  assert.equal(combinedHealth('healthy', false), 'unhealthy');
  assert.equal(combinedHealth('unknown', null), 'unknown');
});

test('health checks: real HTTP and TCP probes', async (t) => {
  const http = await import('node:http');
  const server = http.createServer((req, res) => res.writeHead(req.url === '/healthz' ? 200 : 503).end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as import('node:net').AddressInfo).port;
  const { defaultProbe } = await import('./health-check.ts');
  assert.deepEqual(await defaultProbe({ ...spec, kind: 'http', path: '/healthz' }, '127.0.0.1', port, 'c'), { ok: true });
  assert.deepEqual(await defaultProbe({ ...spec, kind: 'http', path: '/other' }, '127.0.0.1', port, 'c'), { ok: false, reason: 'status 503' });
  assert.deepEqual(await defaultProbe(spec, '127.0.0.1', port, 'c'), { ok: true });
  const closed = await defaultProbe(spec, '127.0.0.1', 1, 'c');
  assert.equal(closed.ok, false);
});
