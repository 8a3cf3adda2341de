import { test } from 'node:test';
import assert from 'node:assert/strict';
import { injectManifests, injectionPatch, injectPodSpec, wantsInjection, type PodSpec } from './inject.ts';
import { captureRules, captureScript } from '../../runner/capture-rules.ts';

const opts = { image: 'img:1', xdsAddress: 'cp:15010', identityUrl: 'http://cp:15080' };
const spec = (): PodSpec => ({
  serviceAccountName: 'reviews',
  initContainers: [{ name: 'migrate', image: 'm' }],
  containers: [{
    name: 'web', image: 'w', ports: [{ name: 'http', containerPort: 8080 }],
    readinessProbe: { httpGet: { path: '/ready', port: 'http', httpHeaders: [{ name: 'x', value: '1' }] }, periodSeconds: 5 },
    livenessProbe: { exec: { command: ['true'] } },
    startupProbe: { httpGet: { path: '/', port: 8080, host: '10.0.0.1' } },
  }],
  volumes: [{ name: 'data', emptyDir: {} }],
});

test('inject: native sidecar first after the capture init, before the app\'s own init containers', () => {
  const out = injectPodSpec(spec(), { labels: { app: 'reviews' } }, opts);
  assert.deepEqual(out.initContainers!.map((c) => c.name), ['trellis-init', 'trellis-proxy', 'migrate']);
  assert.equal(out.initContainers![1]!['restartPolicy'], 'Always');
  assert.deepEqual(out.volumes!.map((v) => v['name']), ['data', 'trellis-token', 'trellis-run']);
  const env = new Map((out.initContainers![1]!['env'] as { name: string; value?: string }[]).map((e) => [e.name, e.value]));
  const boot = JSON.parse(env.get('TRELLIS_BOOTSTRAP')!) as { node: { cluster: string; metadata: { trellis: { inboundPort: number } } } };
  assert.equal(boot.node.cluster, 'reviews');
  assert.equal(boot.node.metadata.trellis.inboundPort, 15006);
  // Named port resolved, headers kept, other fields of the probe kept; exec and another host untouched.
  const web = out.containers[0]!;
  assert.deepEqual(web.readinessProbe, { periodSeconds: 5, httpGet: { path: '/app-health/web/readyz', port: 15000, scheme: 'HTTP' } });
  assert.deepEqual(web.livenessProbe, { exec: { command: ['true'] } });
  assert.deepEqual(web.startupProbe, spec().containers[0]!.startupProbe);
  assert.deepEqual(JSON.parse(env.get('TRELLIS_APP_PROBERS')!), {
    '/app-health/web/readyz': { httpGet: { path: '/ready', port: 8080, scheme: 'HTTP', httpHeaders: [{ name: 'x', value: '1' }] }, timeoutSeconds: 1 },
  });
});

test('inject: idempotent; the input is not modified', () => {
  const s = spec();
  const before = structuredClone(s);
  const once = injectPodSpec(s, {}, opts);
  assert.deepEqual(s, before);
  assert.equal(injectPodSpec(once, {}, opts), once);
  assert.deepEqual(injectionPatch(once, {}, opts), []);
});

test('inject: the pod annotation or label wins over the namespace label', () => {
  assert.equal(wantsInjection({}, { 'trellis-injection': 'enabled' }), true);
  assert.equal(wantsInjection({}, {}), false);
  assert.equal(wantsInjection({ annotations: { 'trellis.dev/inject': 'false' } }, { 'trellis-injection': 'enabled' }), false);
  assert.equal(wantsInjection({ labels: { 'trellis.dev/inject': 'true' } }, {}), true);
});

test('inject: the init container runs exactly the transparent-mode rules', () => {
  const out = injectPodSpec(spec(), {}, opts);
  const script = (out.initContainers![0]!['command'] as string[])[2]!;
  assert.equal(script, captureScript({ outbound: 15001, inbound: 15006, admin: 15000 }, 1337));
  assert.equal(script.split(' && ').length, captureRules({ outbound: 15001, inbound: 15006, admin: 15000 }, 1337).length);
  assert.throws(() => captureRules({ outbound: 70000, inbound: 1, admin: 2 }, 1337), /outbound must be an integer 0-65535/);
});

test('inject -f: Deployment and CronJob templates injected, opted-out ones and other kinds passed through', () => {
  const tpl = (annotations?: Record<string, string>) => ({ metadata: annotations ? { annotations } : {}, spec: spec() });
  const [dep, cron, out, svc] = injectManifests([
    { apiVersion: 'apps/v1', kind: 'Deployment', spec: { template: tpl() } },
    { apiVersion: 'batch/v1', kind: 'CronJob', spec: { jobTemplate: { spec: { template: tpl() } } } },
    { apiVersion: 'apps/v1', kind: 'Deployment', spec: { template: tpl({ 'trellis.dev/inject': 'false' }) } },
    { apiVersion: 'v1', kind: 'Service', spec: { ports: [] } },
  ], opts) as { spec: { template?: { metadata: { annotations?: Record<string, string> }; spec: PodSpec }; jobTemplate?: { spec: { template: { spec: PodSpec } } } } }[];
  assert.equal(dep!.spec.template!.spec.initContainers![1]!.name, 'trellis-proxy');
  assert.equal(dep!.spec.template!.metadata.annotations!['trellis.dev/sidecar-status'], 'injected');
  assert.equal(cron!.spec.jobTemplate!.spec.template.spec.initContainers![0]!.name, 'trellis-init');
  assert.equal(out!.spec.template!.spec.initContainers![0]!.name, 'migrate');
  assert.deepEqual(svc, { apiVersion: 'v1', kind: 'Service', spec: { ports: [] } });
});
