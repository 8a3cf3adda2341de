// xDS connection metrics, read from the xDS source's state at scrape time:
//   trellis_xds_connected            1 while the ADS stream is up, else 0
//   trellis_xds_disconnects_total    streams lost since start
//   trellis_xds_warming_resources    RDS/EDS names referenced but not received
// (The active config version is trellis_config_version_info, proxy-stats.ts.)
import type { Registry } from '../stats.ts';

export interface XdsStateLike {
  readonly connected: boolean;
  readonly disconnects: number;
  readonly waitingFor: readonly string[];
}

/** Register the gauges; returns an unregister function. */
export function registerXdsStats(registry: Registry, state: () => XdsStateLike): () => void {
  const connected = registry.gauge('trellis_xds_connected', 'Whether the ADS stream to the control plane is up (1) or not (0).');
  const warming = registry.gauge('trellis_xds_warming_resources', 'Route and endpoint resources referenced by the config but not received yet.');
  const disconnects = registry.counter('trellis_xds_disconnects_total', 'ADS streams lost since the proxy started.');
  disconnects.labels(); // the series exists (at 0) before the first disconnect
  let seen = 0;
  // Gauges collect before rendering and are registered before the counter,
  // so the counter is brought up to date in the same scrape.
  const offA = connected.onCollect((g) => {
    const s = state();
    g.labels().set(s.connected ? 1 : 0);
    if (s.disconnects > seen) {
      disconnects.labels().inc(s.disconnects - seen);
      seen = s.disconnects;
    }
  });
  const offB = warming.onCollect((g) => g.labels().set(state().waitingFor.length));
  return () => {
    offA();
    offB();
  };
}
