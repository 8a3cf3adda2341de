import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from '../stats.ts';
import { registerXdsStats } from './xds-stats.ts';

test('xDS state becomes gauges and a disconnect counter at scrape time', () => {
  const r = new Registry();
  let s = { connected: true, disconnects: 0, waitingFor: ['eds-a'] };
  registerXdsStats(r, () => s);
  let text = r.expose();
  assert.match(text, /^trellis_xds_connected 1$/m);
  assert.match(text, /^trellis_xds_warming_resources 1$/m);
  s = { connected: false, disconnects: 2, waitingFor: [] };
  text = r.expose();
  assert.match(text, /^trellis_xds_connected 0$/m);
  assert.match(text, /^trellis_xds_disconnects_total 2$/m);
  s = { connected: true, disconnects: 3, waitingFor: [] };
  assert.match(r.expose(), /^trellis_xds_disconnects_total 3$/m);
});
