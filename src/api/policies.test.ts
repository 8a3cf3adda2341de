import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { validateResource } from './validate.ts';
import { resolveKind } from './kinds.ts';

const base = (kind: string) => ({ apiVersion: 'trellis.dev/v1alpha1', kind, metadata: { name: 'p', namespace: 'default' } });
const svc = { kind: 'Service', name: 'reviews' };

function errorsOf(obj: unknown): string[] {
  const r = validateResource(obj);
  return r.ok ? [] : r.errors.map((e) => `${e.path}: ${e.message}`);
}

test('every example under examples/policies validates and every policy kind has one', () => {
  const kinds = new Set<string>();
  for (const f of readdirSync('examples/policies')) {
    for (const d of parseAllDocuments(readFileSync(`examples/policies/${f}`, 'utf8')).map((x) => x.toJS()).filter((x) => x !== null)) {
      assert.deepEqual(errorsOf(d), [], f);
      kinds.add((d as { kind: string }).kind);
    }
  }
  assert.deepEqual([...kinds].sort(), ['CircuitBreakerPolicy', 'FaultInjectionPolicy', 'HealthCheckPolicy', 'LoadBalancerPolicy', 'OutlierDetectionPolicy', 'RateLimitPolicy', 'RetryPolicy', 'TimeoutPolicy']);
  assert.equal(resolveKind('retrypolicies')?.kind, 'RetryPolicy');
  assert.equal(resolveKind('faultpolicy')?.kind, 'FaultInjectionPolicy');
});

test('policy errors name the field path and the reason', () => {
  assert.ok(errorsOf({ ...base('RetryPolicy'), spec: { targetRef: svc, attempts: 2, retryOn: ['sometimes'] } }).some((e) => e.startsWith('spec.retryOn[0]:')));
  assert.ok(errorsOf({ ...base('RetryPolicy'), spec: { targetRef: svc, attempts: 11 } }).some((e) => e.startsWith('spec.attempts:')));
  assert.ok(errorsOf({ ...base('RetryPolicy'), spec: { targetRef: svc, attempts: 1, retriableStatusCodes: [409] } })
    .includes('spec.retriableStatusCodes: needs "retriable-status-codes" in retryOn'));
  assert.ok(errorsOf({ ...base('RetryPolicy'), spec: { targetRef: svc, attempts: 1, backoff: { baseInterval: '1s', maxInterval: '10ms' } } })
    .includes('spec.backoff.maxInterval: must not be less than baseInterval'));
  assert.ok(errorsOf({ ...base('TimeoutPolicy'), spec: { targetRef: svc, request: '1s', backendRequest: '2s' } }).includes('spec.backendRequest: must not be longer than request'));
  assert.ok(errorsOf({ ...base('TimeoutPolicy'), spec: { targetRef: svc, request: 'soon' } }).some((e) => e.startsWith('spec.request:')));
  assert.ok(errorsOf({ ...base('CircuitBreakerPolicy'), spec: { targetRef: { kind: 'HTTPRoute', name: 'r' }, maxRequests: 1 } })
    .some((e) => e.startsWith('spec.targetRef.kind: must be Service')));
  assert.ok(errorsOf({ ...base('CircuitBreakerPolicy'), spec: { targetRef: svc } }).some((e) => e.startsWith('spec: sets no limit')));
  assert.ok(errorsOf({ ...base('HealthCheckPolicy'), spec: { targetRef: svc, interval: '1s', timeout: '2s', tcp: {} } }).includes('spec.timeout: must not be longer than interval'));
  assert.ok(errorsOf({ ...base('HealthCheckPolicy'), spec: { targetRef: svc, interval: '1s', timeout: '1s' } }).includes('spec.http: exactly one of http or tcp is required'));
  assert.ok(errorsOf({ ...base('LoadBalancerPolicy'), spec: { targetRef: svc, type: 'roundRobin', hash: { header: 'x' } } }).includes('spec.hash: is only used with type ringHash'));
  assert.ok(errorsOf({ ...base('LoadBalancerPolicy'), spec: { targetRef: svc, type: 'fastest' } }).some((e) => e.startsWith('spec.type:')));
  assert.ok(errorsOf({ ...base('RateLimitPolicy'), spec: { targetRef: svc, local: { requests: 5 } } }).includes('spec.local.interval: requests and interval go together'));
  assert.ok(errorsOf({ ...base('RateLimitPolicy'), spec: { targetRef: svc, local: { perCaller: [{ caller: '*', requests: 1, interval: '1s' }, { caller: '*', requests: 2, interval: '1s' }] } } })
    .includes('spec.local.perCaller[1].caller: duplicate caller "*"'));
  assert.ok(errorsOf({ ...base('FaultInjectionPolicy'), spec: { targetRef: svc, abort: { httpStatus: 503, grpcStatus: 14, percent: 5 } } })
    .includes('spec.abort: exactly one of httpStatus or grpcStatus is required'));
  assert.ok(errorsOf({ ...base('FaultInjectionPolicy'), spec: { targetRef: svc, delay: { fixed: '1s', percent: 101 } } }).some((e) => e.startsWith('spec.delay.percent:')));
  assert.ok(errorsOf({ ...base('FaultInjectionPolicy'), spec: { targetRef: svc, abort: { httpStatus: 503, percent: 1 }, extra: 1 } }).some((e) => e.startsWith('spec')));
});
