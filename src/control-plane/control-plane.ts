// The control plane, assembled: store -> resources API + registry -> mesh
// state -> per-proxy snapshots -> xDS. One process; several replicas share an
// etcd and each serves the API and xDS (proxies list them all and fail over);
// singleton duties run on the elected leader.
//
//   store (sqlite | etcd) ◄── Kubernetes source (--kubernetes: Services, Pods, slices, routes; kubernetes/source.ts)
//     ├─ resources service  ── HTTP API (apply/get/list/delete/watch)
//     ├─ registry           ── HTTP API (register/heartbeat/deregister)
//     ├─ mesh CA            ── HTTP API (join tokens, CSRs, trust bundle)
//     ├─ leader duties      ── VIP allocation, CA maintenance (ha.ts)
//     └─ watchMeshState ── MeshSnapshotSource (translate per proxy view) ── ADS server
//   ADS server ── connected proxies ── scraper -> golden metrics, tap ── dashboard
//   ADS server, snapshots, leader ── GET /metrics (self-metrics.ts)
import type { ServerResponse } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import type { Store } from './store/types.ts';
import type { Resource } from '../api/types.ts';
import { openSqliteStore } from './store/sqlite.ts';
import { createResourceService, type KindQuota, type ResourceService } from './resources/service.ts';
import { watchMeshState, type MeshStateWatcher } from './mesh-state.ts';
import { MeshSnapshotSource } from './snapshots.ts';
import { DEFAULT_CLUSTER_DOMAIN, type MeshState } from './translate/model.ts';
import { createXdsServer, type XdsServer } from '../xds/server.ts';
import { createApiServer, type ApiServer } from './api/server.ts';
import { registryRoutes, type RegistryApi } from './registry-api.ts';
import { statusRoutes } from './status-api.ts';
import { discoveryRoutes } from './discovery-api.ts';
import { createSelfMetrics } from './self-metrics.ts';
import { runLeaderDuties, haRoutes, vipAllocationDuty, caMaintenanceDuty, followCaState, type LeaderDuties } from './ha.ts';
import { trackConnectedSidecars, type ConnectedSidecars } from './connected-sidecars.ts';
import { needsConnectedSidecars } from './translate/policies.ts';
import { startMeshIdentity, type MeshIdentity, type MeshIdentityOptions } from './ca/mesh-identity.ts';
import { trackProxyNodes, type ProxyNodes } from './telemetry/proxy-nodes.ts';
import { Scraper, DEFAULT_SCRAPE_INTERVAL_MS } from './telemetry/scraper.ts';
import { createGoldenMetrics, serviceMembers, type GoldenMetrics } from './telemetry/golden.ts';
import { metricsRoutes } from './telemetry/metrics-routes.ts';
import { PrometheusSource } from './telemetry/prometheus-source.ts';
import { tapRoutes } from './telemetry/tap-proxy.ts';
import { dashboardApi } from '../dashboard/dashboard-api.ts';
import { dashboardRoutes } from '../dashboard/serve.ts';
import type { KubeConfig } from './kubernetes/kubeconfig.ts';
import { createKubeClient, type KubeClient } from './kubernetes/client.ts';
import { tokenReviewAuthenticator } from './kubernetes/token-review.ts';
import { startInjectionWebhook, type InjectionWebhookOptions } from './kubernetes/webhook.ts';
import { startKubernetesSource } from './kubernetes/source.ts';
import { createApiAuth, isLoopbackAddress } from './api/auth.ts';
import { authRoutes } from './api/auth-routes.ts';
import { ensureBootstrapAdmin } from './api/api-tokens.ts';
import { servingSans, startServingIdentity, type ServingIdentity } from './serving-identity.ts';
import { authorizeXdsNode } from './xds-authz.ts';
import { workloadCredentials } from './api/workload-credentials.ts';
import { applyWarnings } from './lockout.ts';

/** Options that cannot work together: the operator's to fix (the CLI prints it, no stack). */
export class ControlPlaneSettingsError extends Error {}

export interface ControlPlaneOptions {
  /** Embedded store directory (default backend). */
  dataDir?: string;
  /** etcd endpoints: several replicas share one etcd. */
  etcdEndpoints?: string[];
  /** A store already opened (tests). */
  store?: Store;
  host?: string;
  /** 0 picks a free port. Defaults 15080 / 15010. */
  apiPort?: number;
  xdsPort?: number;
  /** xDS over mutual TLS (0 picks a free port). Default: 15012 when bound
   * beyond loopback; on loopback only when given. */
  xdsTlsPort?: number;
  /** Extra SANs (IPs or DNS names) for the serving certificate. */
  sans?: string[];
  /** Serve the API over HTTPS with the mesh CA's certificate. Default: when bound beyond loopback. */
  apiTls?: boolean;
  /** Serve plaintext xDS (and a plaintext API) beyond loopback anyway; logs a warning. */
  insecurePlaintext?: boolean;
  /** Identifies this replica in xDS responses and logs. */
  id?: string;
  /** Leader election lease TTL: how long a dead leader keeps its duties (default 10 s). */
  leaderTtlSeconds?: number;
  log?: (msg: string) => void;
  /** The mesh CA and automatic mTLS (docs/identity-and-mtls.md); `false` turns both off. */
  identity?: MeshIdentityOptions | false;
  /** DNS suffix of service names (`<name>.<ns>.svc.<clusterDomain>`); default cluster.local. */
  clusterDomain?: string;
  /** How often the proxies' metrics are scraped (default 5000 ms). */
  scrapeIntervalMs?: number;
  /** A Prometheus that scrapes the proxies (e.g. through
   * /api/v1/metrics/prometheus-sd) answers the golden metrics instead of the
   * embedded scraper, which then does not run (docs/telemetry.md). */
  prometheusUrl?: string;
  /** Serve the web dashboard on the API port (default true). */
  dashboard?: boolean;
  /** Kubernetes mode: keep the store in step with this API server (docs/kubernetes.md). */
  kubernetes?: KubeConfig;
  /** Objects and bytes per kind (default DEFAULT_KIND_QUOTA). */
  quota?: KindQuota;
  /** Kubernetes mode: serve the sidecar injection webhook (kubernetes/webhook.ts). */
  injection?: Omit<InjectionWebhookOptions, 'ca' | 'client' | 'log'>;
  /** Require credentials on the API even when bound to loopback (they are
   * always required on any other address; docs/security-model.md). */
  requireAuth?: boolean;
}

export interface ControlPlane {
  readonly id: string;
  readonly apiPort: number;
  /** The plaintext xDS port (0 when not served: bound beyond loopback). */
  readonly xdsPort: number;
  /** The mutual-TLS xDS port, when served. */
  readonly xdsTlsPort: number | undefined;
  readonly apiUrl: string;
  /** The plaintext xDS address, or the TLS one when plaintext is not served. */
  readonly xdsAddress: string;
  readonly xdsTlsAddress: string | undefined;
  /** The control plane's serving certificate (TLS xDS, HTTPS API), when served. */
  readonly serving: ServingIdentity | undefined;
  readonly store: Store;
  readonly resources: ResourceService;
  readonly xds: XdsServer;
  readonly snapshots: MeshSnapshotSource;
  readonly registry: RegistryApi;
  readonly api: ApiServer;
  /** Undefined when started with `identity: false`. */
  readonly identity: MeshIdentity | undefined;
  /** Leader election and the singleton duties it runs (docs/high-availability.md). */
  readonly ha: LeaderDuties;
  /** Connected proxies and their admin addresses (scrape and tap targets). */
  readonly proxies: ProxyNodes;
  /** Golden metrics from the embedded scraper, or from Prometheus with `prometheusUrl` (docs/telemetry.md). */
  readonly metrics: GoldenMetrics;
  /** The embedded scraper; undefined in Prometheus mode. */
  readonly scraper: Scraper | undefined;
  /** Whether the API requires credentials (bound beyond loopback, or requireAuth). */
  readonly authRequired: boolean;
  /** Where this replica wrote the first admin token, when it minted one. */
  readonly adminTokenFile: string | undefined;
  close(): Promise<void>;
}

async function openStore(opts: ControlPlaneOptions): Promise<{ store: Store; owned: boolean }> {
  if (opts.store) return { store: opts.store, owned: false };
  if (opts.etcdEndpoints && opts.etcdEndpoints.length > 0) {
    const { openEtcdStore } = await import('./store/etcd.ts');
    return { store: await openEtcdStore({ endpoints: opts.etcdEndpoints }), owned: true };
  }
  return { store: await openSqliteStore(opts.dataDir ?? '.trellis/data', { warn: (m) => (opts.log ?? console.error)(`warning: ${m}`) }), owned: true };
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const host = opts.host ?? '127.0.0.1';
  const id = opts.id ?? `trellis-cp-${process.pid}`;
  const log = opts.log ?? ((msg: string) => console.log(`${new Date().toISOString()} control-plane ${msg}`));
  const { store, owned } = await openStore(opts);
  const cleanups: (() => Promise<void> | void)[] = [];
  try {
    let kubeClient: KubeClient | undefined;
    if (opts.kubernetes) {
      // Before the mesh state is first read, so it starts with the cluster's services.
      const client = createKubeClient(opts.kubernetes);
      kubeClient = client;
      cleanups.push(() => client.close());
      const kube = await startKubernetesSource(store, client, { log });
      cleanups.push(() => kube.stop());
      await kube.synced;
      log(`kubernetes: synced with ${opts.kubernetes.source} at ${opts.kubernetes.server}`);
    }
    const snapshots = new MeshSnapshotSource({ log });
    // A route's status also says what translation warned about it (e.g. what a proxyless gRPC client kind ignores).
    const resources = createResourceService(store, {
      ...(opts.quota ? { quota: opts.quota } : {}),
      translationWarnings: (kind, ns, name) => snapshots.warningsAbout(`${kind} ${ns}/${name}`),
    });
    // A live workload's certificate blocks retiring its root: its proxy is
    // connected to this replica, or it is in the registry (shared by every
    // replica, so a proxy connected elsewhere counts too). Both are set below.
    let proxies: ProxyNodes | undefined;
    let registered: (() => MeshState) | undefined;
    const isLive = (namespace: string, workload: string): boolean =>
      (proxies?.list().some((p) => p.namespace === namespace && p.workload === workload) ?? false) ||
      (registered?.().workloads.some((w) => w.namespace === namespace && w.name === workload) ?? false);
    // Kubernetes mode: sidecars prove who they are with a projected
    // ServiceAccount token, checked by a TokenReview (no join tokens).
    const identity = opts.identity === false ? undefined : await startMeshIdentity(store, {
      ...(kubeClient ? { authenticate: tokenReviewAuthenticator(kubeClient) } : {}),
      ...opts.identity,
      routes: { isLive, ...opts.identity?.routes },
    });
    if (identity) cleanups.push(() => identity.stop());
    if (opts.injection) {
      if (!kubeClient || !identity) throw new Error('sidecar injection needs Kubernetes mode and the CA');
      const webhook = await startInjectionWebhook({ ...opts.injection, ca: identity.ca, client: kubeClient, log });
      cleanups.push(() => webhook.close());
    }
    // Global rate limits split by connected sidecars (connected-sidecars.ts, translate/policies.ts).
    let connected: ConnectedSidecars | undefined;
    // The DNS suffix apps use (Kubernetes' cluster domain), independent of the SPIFFE trust domain.
    const clusterDomain = opts.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
    // Memoised per state, as identity.decorate is: the same state must stay
    // the same object, or every translation memo keyed by it misses.
    const withDomain = new WeakMap<MeshState, MeshState>();
    const decorate = (state: MeshState): MeshState => {
      const base = identity ? identity.decorate(state) : state;
      let s = withDomain.get(base);
      if (!s) withDomain.set(base, (s = { ...base, clusterDomain }));
      return connected && needsConnectedSidecars(s) ? { ...s, connectedSidecars: connected.current() } : s;
    };
    const watcher: MeshStateWatcher = await watchMeshState(store, (state, revision) => snapshots.setState(decorate(state), revision));
    cleanups.push(() => watcher.stop());
    registered = () => watcher.current();
    identity?.onChange(() => snapshots.setState(decorate(watcher.current()), watcher.revision()));

    // Plaintext only on loopback (or behind --insecure-plaintext); beyond it
    // xDS and the API speak TLS with a certificate from the mesh CA.
    const loopback = isLoopbackAddress(host);
    if (!loopback && opts.insecurePlaintext) log(`WARNING: --insecure-plaintext: xDS on ${host}:${opts.xdsPort ?? 15010} and the API are plaintext on a network; anyone on it can read every proxy's config and the API's tokens`);
    const plaintextXds = loopback || opts.insecurePlaintext === true;
    const xdsTlsPortWanted = opts.xdsTlsPort ?? (loopback ? undefined : 15012);
    const apiTls = opts.apiTls ?? (!loopback && opts.insecurePlaintext !== true);
    if (!identity && (xdsTlsPortWanted !== undefined || apiTls)) {
      throw new ControlPlaneSettingsError(`the control plane bound to ${host} serves TLS with a certificate from its mesh CA: drop --no-identity, or bind to 127.0.0.1, or pass --insecure-plaintext`);
    }
    let serving: ServingIdentity | undefined;
    if (identity && (xdsTlsPortWanted !== undefined || apiTls)) {
      serving = await startServingIdentity(identity.ca, { sans: servingSans(host, opts.sans ?? []), log });
      const s = serving;
      cleanups.push(() => s.stop());
      // A CA rotation (new bundle or intermediate): a certificate from the new chain.
      const ca = identity.ca;
      const issuer = (): string => `${ca.trustBundle().pem}|${ca.status().intermediate.fingerprint}`;
      let issuedFrom = issuer();
      identity.onChange(() => {
        if (issuer() === issuedFrom) return;
        issuedFrom = issuer();
        void s.refresh().catch((err: Error) => log(`serving certificate: ${err.message}`));
      });
    }
    const trustDomain = identity?.ca.trustDomain ?? '';
    const xds = createXdsServer({
      source: snapshots,
      controlPlaneId: id,
      authorize: (node, peer) => authorizeXdsNode(node, peer, { trustDomain, state: () => watcher.current() }),
    });
    cleanups.push(() => xds.close({ graceMs: 0 }));
    const xdsPort = plaintextXds ? await xds.listen(host, opts.xdsPort ?? 15010) : 0;
    let xdsTlsPort: number | undefined;
    if (serving && xdsTlsPortWanted !== undefined) {
      // One provider object for both roles: grpc-js swaps the two arguments internally.
      const creds = grpc.experimental.createCertificateProviderServerCredentials(serving.certificateProvider, serving.certificateProvider, true);
      xdsTlsPort = await xds.listen(host, xdsTlsPortWanted, creds);
    }
    connected = trackConnectedSidecars(xds, () => {
      if (needsConnectedSidecars(watcher.current())) snapshots.setState(decorate(watcher.current()), watcher.revision());
    });
    cleanups.push(() => connected?.stop());

    const registry = registryRoutes(store, { log });
    cleanups.push(() => registry.close());
    // Who may call the API (api/auth.ts): anonymous loopback callers are
    // admin only while the API listens on loopback alone.
    const authRequired = opts.requireAuth === true || !isLoopbackAddress(host);
    const dataDir = opts.dataDir ?? '.trellis/data';
    let adminTokenFile: string | undefined;
    if (authRequired) {
      const boot = await ensureBootstrapAdmin(store, dataDir, id);
      if (boot.created) adminTokenFile = boot.file;
    }
    const auth = createApiAuth({ store, required: authRequired, ...(identity ? { extra: workloadCredentials(identity.ca) } : {}) });
    // Apply results warn about workloads a security policy locks out (lockout.ts);
    // `metrics` is set up below, before the API listens.
    const warnings = (applied: readonly Resource[]): Promise<string[][]> => applyWarnings(applied, { state: () => watcher.current(), edges: () => metrics.edges({ window: '15m' }) });
    const api = createApiServer({ resources, auth, applyWarnings: warnings, ...(apiTls && serving ? { tls: serving } : {}) });
    api.addRoutes(authRoutes({ store, required: authRequired, secure: apiTls }));
    api.addRoutes(registry.routes);
    // Who is connected, with what their node metadata says (admin address, workload).
    const nodes = trackProxyNodes(xds, {
      workloadAddress: (ns, name) => watcher.current().workloads.find((w) => w.namespace === ns && w.name === name)?.address,
      log,
    });
    proxies = nodes;
    cleanups.push(() => nodes.stop());
    api.addRoutes(statusRoutes({ xds, snapshots, id, nodes }));
    api.addRoutes(discoveryRoutes({ ...(plaintextXds ? { port: xdsPort } : {}), ...(xdsTlsPort === undefined ? {} : { tlsPort: xdsTlsPort }) }));
    if (identity) api.addRoutes(identity.routes);

    // Singleton duties run on the elected replica only (docs/high-availability.md).
    const ha = runLeaderDuties(store, {
      identity: id,
      ...(opts.leaderTtlSeconds === undefined ? {} : { ttlSeconds: opts.leaderTtlSeconds }),
      duties: [vipAllocationDuty(store), ...(identity ? [caMaintenanceDuty(identity.ca)] : [])],
      log,
    });
    cleanups.push(() => ha.stop());
    api.addRoutes(haRoutes(ha));
    // Its own metrics for Prometheus: proxies in sync, pushes, convergence, leadership.
    const self = createSelfMetrics({ id, storeKind: store.kind, xds, snapshots, state: () => watcher.current(), ha: () => ha.status() });
    cleanups.push(() => self.stop());
    api.addRoutes(self.routes);
    if (identity) {
      // A CA rotation through another replica (or the leader's maintenance) reaches this one.
      const follower = followCaState(store, identity.ca, { onReloaded: () => identity.refreshBundle(), log });
      cleanups.push(() => follower.stop());
    }

    // Telemetry: the golden metrics from one source, the embedded scraper of
    // every connected proxy's admin listener or a real Prometheus
    // (`prometheusUrl`); the live tap and the dashboard on the same port.
    const intervalMs = opts.scrapeIntervalMs ?? DEFAULT_SCRAPE_INTERVAL_MS;
    const scraper = opts.prometheusUrl === undefined ? new Scraper({
      targets: () => nodes.targets(), intervalMs,
      // Proxies on other hosts: mTLS with the serving certificate (spiffe://<td>/trellis/control-plane).
      clientCert: () => {
        const c = serving?.current();
        return c ? { cert: c.certificateChain, key: c.privateKeyPem, ca: c.trustBundle } : undefined;
      },
    }) : undefined;
    if (scraper) {
      scraper.start();
      cleanups.push(() => scraper.stop());
    }
    const groups = scraper ? scraper.aggregator : new PrometheusSource({ url: opts.prometheusUrl! });
    const metrics = createGoldenMetrics(groups, { members: () => serviceMembers(watcher.current()) });
    const streams = new Set<ServerResponse>();
    cleanups.push(() => {
      for (const s of streams) s.end();
    });
    api.addRoutes(metricsRoutes({ metrics, ...(scraper ? { scraper } : {}), intervalMs, streams, targets: () => nodes.targets() }));
    api.addRoutes(tapRoutes({ targets: () => nodes.targets().map((t) => t.address), token: (a) => nodes.adminToken(a), streams }));
    const board = dashboardApi({ metrics, ...(scraper ? { scraper } : {}), groups, intervalMs, xds, nodes, state: () => decorate(watcher.current()) });
    cleanups.push(() => board.stop());
    api.addRoutes(board.routes);
    if (opts.dashboard !== false) api.addRoutes(dashboardRoutes({ log })); // last: its SPA fallback matches every path
    const { port: apiPort, url: apiUrl } = await api.listen(opts.apiPort ?? 15080, host);
    cleanups.push(() => api.close());

    const hostPort = (p: number): string => (host.includes(':') ? `[${host}]:${p}` : `${host}:${p}`);
    const xdsTlsAddress = xdsTlsPort === undefined ? undefined : hostPort(xdsTlsPort);
    log(`ready: api ${apiUrl} xds ${plaintextXds ? hostPort(xdsPort) : '-'} xds-tls ${xdsTlsAddress ?? '-'} store ${store.kind}${authRequired ? ' (API credentials required)' : ' (loopback: anonymous callers are admin)'}`);
    if (adminTokenFile) log(`first admin token written to ${adminTokenFile} (0600); log in with: trellis login --server ${apiUrl} --token "$(cat ${adminTokenFile})"${apiTls && identity ? ` --ca-pin ${identity.ca.caPin()}` : ''}`);
    let closed = false;
    return {
      id,
      apiPort,
      xdsPort,
      xdsTlsPort,
      apiUrl,
      xdsAddress: plaintextXds ? hostPort(xdsPort) : xdsTlsAddress!,
      xdsTlsAddress,
      serving,
      store,
      resources,
      xds,
      snapshots,
      registry,
      api,
      identity,
      ha,
      proxies: nodes,
      metrics,
      scraper,
      authRequired,
      adminTokenFile,
      async close() {
        if (closed) return;
        closed = true;
        for (const c of cleanups.reverse()) await c();
        if (owned) await store.close();
      },
    };
  } catch (err) {
    for (const c of cleanups.reverse()) await c();
    if (owned) await store.close();
    throw err;
  }
}
