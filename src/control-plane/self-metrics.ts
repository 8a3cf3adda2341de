// The control plane's own metrics, `GET /metrics` on the API port in the
// Prometheus text format (what istiod's pilot_* metrics are to Istio): how
// many proxies are connected and in sync, pushes, ACKs and NACKs by type,
// how long a config change takes to reach the proxies, the push queue,
// rejected translations, the store revision, leadership and the process.
//
// Convergence (trellis_xds_convergence_seconds) is timed from a mesh state
// change (snapshots.onChange) to a proxy's ACK of the first push of a type
// after it, for proxies connected before the change: the time an operator's
// `trellis apply` or an endpoint change takes to be in force. A stream's first
// pushes (a proxy connecting) are not convergence; their push-to-ACK time is
// in trellis_xds_ack_latency_seconds with every other push.
import { shortType, type XdsServer, type XdsServerEvent } from '../xds/server.ts';
import type { MeshSnapshotSource } from './snapshots.ts';
import type { MeshState } from './translate/model.ts';
import type { HaStatus } from './ha.ts';
import { Registry, PROMETHEUS_CONTENT_TYPE, type CounterChild, type HistogramChild } from '../proxy/stats.ts';
import type { ApiRoute } from './api/server.ts';

/** Seconds: 5 ms .. 60 s (a change to thousands of proxies takes seconds). */
const CONVERGENCE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface SelfMetricsDeps {
  readonly id: string;
  readonly storeKind: string;
  readonly xds: XdsServer;
  readonly snapshots: MeshSnapshotSource;
  readonly state: () => MeshState | undefined;
  readonly ha: () => HaStatus;
  /** performance.now by default (tests). */
  readonly now?: () => number;
}

export interface SelfMetrics {
  readonly registry: Registry;
  readonly routes: ApiRoute[];
  stop(): void;
}

interface Pending {
  readonly nonce: string;
  readonly pushedAt: number;
  /** When the change this push carries happened; undefined for a stream's first pushes. */
  readonly changedAt: number | undefined;
}

interface StreamTimes {
  readonly connectedAt: number;
  /** type -> the change id its last push carried. */
  readonly pushedChange: Map<string, number>;
  readonly pending: Map<string, Pending>;
}

export function createSelfMetrics(d: SelfMetricsDeps): SelfMetrics {
  const now = d.now ?? (() => performance.now());
  const r = new Registry();
  // Process first: its collector also brings the CPU counter up to date
  // before that is rendered.
  const rss = r.gauge('process_resident_memory_bytes', 'Resident memory of the control-plane process.');
  const heap = r.gauge('nodejs_heap_used_bytes', 'V8 heap in use.');
  const cpu = r.counter('process_cpu_seconds_total', 'User and system CPU time of the control-plane process.').labels();
  let cpuSeen = 0;
  rss.onCollect((g) => {
    const m = process.memoryUsage();
    g.labels().set(m.rss);
    heap.labels().set(m.heapUsed);
    const u = process.cpuUsage();
    const total = (u.user + u.system) / 1e6;
    cpu.inc(total - cpuSeen);
    cpuSeen = total;
  });
  r.gauge('trellis_cp_info', 'This control-plane replica (value is always 1).', ['control_plane', 'store']).labels(d.id, d.storeKind).set(1);
  r.gauge('trellis_cp_leader', '1 when this replica holds the leader duties.').onCollect((g) => g.labels().set(d.ha().isLeader ? 1 : 0));
  r.gauge('trellis_cp_store_revision', 'Store revision of the mesh state being served.').onCollect((g) => g.labels().set(d.snapshots.revision()));
  r.gauge('trellis_mesh_resources', 'Resources in the mesh state being served, by kind.', ['kind']).onCollect((g) => {
    const s = d.state();
    if (!s) return;
    const counts: Record<string, number> = {
      Service: s.services.length,
      HTTPRoute: s.httpRoutes.length,
      GRPCRoute: s.grpcRoutes.length,
      TCPRoute: s.tcpRoutes.length,
      Workload: s.workloads.length,
      Gateway: s.gateways?.length ?? 0,
      ExternalService: s.externalServices?.length ?? 0,
      Policy: s.policies?.length ?? 0,
    };
    for (const [kind, n] of Object.entries(counts)) g.labels(kind).set(n);
  });
  r.gauge('trellis_xds_proxies', 'Connected proxies by sync state (synced: every type ACKed at the latest version; rejected: the latest NACKed).', ['state']).onCollect((g) => {
    const by = { synced: 0, stale: 0, rejected: 0 };
    for (const p of d.xds.status()) by[p.status]++;
    for (const [state, n] of Object.entries(by)) g.labels(state).set(n);
  });
  r.gauge('trellis_xds_views_rejected', 'Proxy views whose latest translation was rejected (they keep their last good config).').onCollect((g) => {
    g.labels().set(d.snapshots.reports().filter((x) => x.errors.length > 0).length);
  });
  r.gauge('trellis_xds_push_inflight_bytes', 'xDS responses written and not yet taken by their sockets (the push budget in use).').onCollect((g) => g.labels().set(d.xds.pushQueue().inflightBytes));
  r.gauge('trellis_xds_push_waiting_streams', 'Streams with a push waiting for its slice or for budget.').onCollect((g) => g.labels().set(d.xds.pushQueue().waitingStreams));
  const connects = r.counter('trellis_xds_connects_total', 'ADS streams opened.').labels();
  const disconnects = r.counter('trellis_xds_disconnects_total', 'ADS streams closed.').labels();
  const pushes = r.counter('trellis_xds_pushes_total', 'xDS responses sent, by type.', ['type']);
  const acks = r.counter('trellis_xds_acks_total', 'xDS responses ACKed, by type.', ['type']);
  const nacks = r.counter('trellis_xds_nacks_total', 'xDS responses NACKed (rejected by the proxy), by type.', ['type']);
  const ackLatency = r.histogram('trellis_xds_ack_latency_seconds', 'Time from sending an xDS response to its ACK, by type.', ['type'], CONVERGENCE_BUCKETS);
  const convergence = r.histogram('trellis_xds_convergence_seconds', 'Time from a mesh state change to a connected proxy\'s ACK of it, by type.', ['type'], CONVERGENCE_BUCKETS);

  const byType = new Map<string, { pushes: CounterChild; acks: CounterChild; nacks: CounterChild; ackLatency: HistogramChild; convergence: HistogramChild }>();
  const series = (typeUrl: string) => {
    let s = byType.get(typeUrl);
    if (!s) {
      const t = shortType(typeUrl);
      s = { pushes: pushes.labels(t), acks: acks.labels(t), nacks: nacks.labels(t), ackLatency: ackLatency.labels(t), convergence: convergence.labels(t) };
      byType.set(typeUrl, s);
    }
    return s;
  };

  let changeId = 0;
  let changedAt = now();
  const offChange = d.snapshots.onChange(() => {
    changeId++;
    changedAt = now();
  });
  const streams = new Map<number, StreamTimes>();
  const onEvent = (e: XdsServerEvent): void => {
    switch (e.kind) {
      case 'connect':
        connects.inc();
        streams.set(e.streamId, { connectedAt: now(), pushedChange: new Map(), pending: new Map() });
        return;
      case 'disconnect':
        disconnects.inc();
        streams.delete(e.streamId);
        return;
      case 'push': {
        series(e.typeUrl).pushes.inc();
        const st = streams.get(e.streamId);
        if (!st) return;
        const first = st.pushedChange.get(e.typeUrl) !== changeId && st.connectedAt < changedAt;
        st.pushedChange.set(e.typeUrl, changeId);
        st.pending.set(e.typeUrl, { nonce: e.nonce, pushedAt: now(), changedAt: first ? changedAt : undefined });
        return;
      }
      case 'ack':
      case 'nack': {
        const s = series(e.typeUrl);
        const st = streams.get(e.streamId);
        const p = st?.pending.get(e.typeUrl);
        if (e.kind === 'nack') {
          s.nacks.inc();
          if (p?.nonce === e.nonce) st!.pending.delete(e.typeUrl);
          return;
        }
        s.acks.inc();
        if (!p || p.nonce !== e.nonce) return;
        st!.pending.delete(e.typeUrl);
        const t = now();
        s.ackLatency.observe((t - p.pushedAt) / 1000);
        if (p.changedAt !== undefined) s.convergence.observe((t - p.changedAt) / 1000);
        return;
      }
      default:
        return;
    }
  };
  const offEvents = d.xds.on(onEvent);

  const routes: ApiRoute[] = [
    {
      method: 'GET',
      pattern: '/metrics',
      handle(_req, res) {
        res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'cache-control': 'no-store' });
        res.end(r.expose());
      },
    },
  ];
  return {
    registry: r,
    routes,
    stop() {
      offChange();
      offEvents();
      streams.clear();
    },
  };
}
