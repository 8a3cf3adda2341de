// The demo's traffic generator: a steady, bounded rate of page views to
// productpage (default 20/s, at most 40 in flight), through its own sidecar
// (HTTP_PROXY) or, with TRELLIS_DEMO_TARGET, to an ingress gateway. About
// one request in ten is from a beta user (`x-user-group: beta`), so header
// steering shows up. Prints a one-line summary every 10 s.
import { meshGet } from './mesh-http.ts';

const rate = Math.max(1, Math.min(200, Number(process.env.TRELLIS_DEMO_RPS ?? 20)));
const target = process.env.TRELLIS_DEMO_TARGET ?? 'http://productpage:9080/';
const MAX_IN_FLIGHT = 40;

let inFlight = 0;
let window = { ok: 0, partial: 0, failed: 0, skipped: 0 };
const versions = new Map<string, number>();

async function one(): Promise<void> {
  const beta = Math.random() < 0.1;
  const r = await meshGet(target, beta ? { 'x-user-group': 'beta' } : {}, 5000);
  if (r.status !== 200) {
    window.failed++;
    return;
  }
  const body = r.body as { complete?: boolean; reviews?: { body?: { version?: string } } };
  if (body.complete) window.ok++;
  else window.partial++;
  const v = body.reviews?.body?.version;
  if (v) versions.set(v, (versions.get(v) ?? 0) + 1);
}

const tick = setInterval(() => {
  if (inFlight >= MAX_IN_FLIGHT) {
    window.skipped++;
    return;
  }
  inFlight++;
  one().finally(() => inFlight--);
}, 1000 / rate);

const report = setInterval(() => {
  const v = [...versions.entries()].sort().map(([k, n]) => `${k}=${n}`).join(' ');
  console.log(`loadgen: last 10s ok=${window.ok} partial=${window.partial} failed=${window.failed}${window.skipped ? ` skipped=${window.skipped}` : ''} reviews[${v}]`);
  window = { ok: 0, partial: 0, failed: 0, skipped: 0 };
  versions.clear();
}, 10_000);

const stop = (): void => {
  clearInterval(tick);
  clearInterval(report);
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
console.log(`loadgen: ${rate} req/s to ${target}`);
