// `trellis proxy --config FILE`: run a sidecar proxy from a bootstrap file.
//
// - Bad bootstrap: every error printed with its field path, exit 2.
// - A listener or the admin port cannot bind: exit 1; exit 3
//   (EXIT_PORT_IN_USE) when every failure was a port already in use, so a
//   runner that picked the ports can pick others (runner/sidecar.ts).
// - Waiting for the control plane at start-up: keeps trying, however long.
// - SIGHUP, or a change to the file (debounced): reload; a bad edit is
//   logged and the running config keeps serving.
// - With `dynamicResources.ads` the config comes from the control plane over
//   xDS instead (the proxy starts on the first accepted config; the file is
//   then only read for node, admin and the ADS address).
// - SIGTERM / SIGINT: drain (stop accepting, finish in-flight requests up to
//   --drain-ms, default 5000), then exit 0. A second signal exits at once (1).
// - Logs: one JSON object per line on stdout: {"ts","level","event",...}.
import { parseArgs } from '../command-args.ts';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { adminTokenOf, metricsAddressOf, withAdminToken } from '../../proxy/telemetry/identity.ts';
import { startMetricsListener, type MetricsListener } from '../../proxy/metrics-listener.ts';
import { loadBootstrapFile } from '../../proxy/config/bootstrap.ts';
import { formatErrors } from '../../proxy/config/envoy.ts';
import type { ProxyConfig } from '../../proxy/config/types.ts';
import { startProxy, DEFAULT_DRAIN_MS, type Proxy } from '../../proxy/proxy.ts';
import { parseAppProbers } from '../../proxy/app-health.ts';
import { fileConfigSource, type ConfigSource } from '../../proxy/config-source.ts';
import { preflightPlugins } from '../../proxy/plugins/preflight.ts';
import type { XdsSourceState } from '../../proxy/xds-source.ts';
import { registerXdsStats } from '../../proxy/telemetry/xds-stats.ts';
import { createCaClient, resolveJoinToken, saTokenFile } from '../../proxy/identity/ca-client.ts';
import { createWorkloadIdentity, type WorkloadIdentity } from '../../proxy/identity/workload-identity.ts';
import { parseDuration } from '../../api/schema-common.ts';
import { trustBundleSubscription } from '../../proxy/identity/trust-bundle-secret.ts';
import { xdsChannelCredentials } from '../../proxy/identity/xds-credentials.ts';
import { meshTlsProxyOptions } from '../../proxy/tls/mesh-tls.ts';
import { gatewayTlsProxyOptions } from '../../proxy/gateway-tls.ts';
import { composeUpstreamTls, createEgressTls, type UpstreamTlsHook } from '../../proxy/egress-tls.ts';
import { tuneProxyRuntime } from '../../proxy/runtime.ts';
import { checkTracingOptions } from '../../proxy/telemetry/tracing-options.ts';
import type { TracerConfig } from '../../proxy/telemetry/telemetry.ts';

export const EXIT_PORT_IN_USE = 3;

export const summary = 'run a sidecar proxy from a bootstrap file (static config or xDS)';

const usage = `usage: trellis proxy --config FILE [--admin-port N] [--drain-ms N] [--detect-timeout-ms N] [--no-watch]

  --config, -c FILE      bootstrap (Envoy v3 shape, YAML or JSON; --bootstrap is an alias)
  --admin-port N         override the bootstrap's admin port (admin stays on its address)
  --drain-ms N           shutdown drain deadline (default ${DEFAULT_DRAIN_MS})
  --detect-timeout-ms N  protocol detection wait before falling back to opaque TCP (default 200)
  --no-watch             reload only on SIGHUP, not on file changes

workload identity and mTLS (docs/identity-and-mtls.md):
  --join-token T         join token from \`POST /api/v1/identity/join-tokens\` (or TRELLIS_JOIN_TOKEN)
  --join-token-file F    read it from a file (or TRELLIS_JOIN_TOKEN_FILE)
  --sa-token-file F      Kubernetes mode: the projected ServiceAccount token (audience trellis),
                         re-read at every renewal (or TRELLIS_SA_TOKEN_FILE; docs/kubernetes.md)
  --identity-url URL     control plane API (default TRELLIS_IDENTITY_URL, else http://<ADS host>:15080,
                         https:// when the bootstrap's ads says tls: true)
                         (TRELLIS_IDENTITY_ROLLOVER_WINDOW, default 10s: when the CA activates a new
                         root, renew at a random point within this long)
  --ca-file F            the mesh CA bundle (PEM) to trust over HTTPS (or TRELLIS_CA_FILE); without
                         it the CA pinned in the join token (tjt_<secret>.<hash>) is used
  Without a join token the proxy has no identity and ignores mTLS config (plaintext).
  With \`dynamicResources.ads.tls: true\` xDS runs over mutual TLS with that identity
  (the control plane's port 15012).

JWT authentication (docs/authorization.md):
  --jwks-ca FILE         extra CA certificates (PEM) trusted for HTTPS JWKS URLs

tracing (docs/telemetry.md), off unless a collector is given:
  --tracing-collector URL  OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces
                           (or TRELLIS_TRACING_COLLECTOR)
  --tracing-sampling R     probability of sampling a new trace, 0..1 (default 0.01,
                           or TRELLIS_TRACING_SAMPLING); a caller's decision is kept`;

type Level = 'info' | 'warn' | 'error';

function logLine(level: Level, event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ ts: new Date().toISOString(), level, event, ...fields })}\n`);
}

const WARN_EVENTS = new Set(['jwks_fetch_failed', 'config_rejected', 'config_invalid', 'tcp_connect_failed', 'no_filter_chain', 'tls_not_terminated', 'listener_error', 'serve_failed', 'h2_reset_flood']);
const QUIET_EVENTS = new Set(['downstream_error', 'tcp_upstream_error']);

function intOption(v: string | undefined, name: string): number | undefined | Error {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) return new Error(`--${name}: "${v}" is not a non-negative integer`);
  return Number(v);
}

/** Tracing from the flags (or their environment variables): off without a
 * collector; a sampling rate alone is an error, since it would do nothing. */
function tracingOption(collector: string | undefined, sampling: string | undefined): TracerConfig | undefined | Error {
  const url = collector === '' ? undefined : collector;
  const rate = sampling === '' || sampling === undefined ? undefined : Number(sampling);
  if (url === undefined) return rate === undefined ? undefined : new Error('--tracing-sampling: needs --tracing-collector (or TRELLIS_TRACING_COLLECTOR)');
  const config: TracerConfig = rate === undefined ? { collectorUrl: url } : { collectorUrl: url, samplingRate: rate };
  const errors = checkTracingOptions(config).map((e) => e.replace('tracing.collectorUrl', '--tracing-collector').replace('tracing.samplingRate', '--tracing-sampling'));
  return errors.length > 0 ? new Error(errors.join('; ')) : config;
}

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        bootstrap: { type: 'string' },
        'admin-port': { type: 'string' },
        'drain-ms': { type: 'string' },
        'detect-timeout-ms': { type: 'string' },
        'no-watch': { type: 'boolean' },
        'join-token': { type: 'string' },
        'join-token-file': { type: 'string' },
        'sa-token-file': { type: 'string' },
        'identity-url': { type: 'string' },
        'ca-file': { type: 'string' },
        'jwks-ca': { type: 'string' },
        'tracing-collector': { type: 'string' },
        'tracing-sampling': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    console.error(`trellis proxy: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const file = values.config ?? values.bootstrap;
  if (!file) {
    console.error(`trellis proxy: --config FILE is required\n\n${usage}`);
    return 2;
  }
  const adminPort = intOption(values['admin-port'], 'admin-port');
  const drainOpt = intOption(values['drain-ms'], 'drain-ms');
  const detectTimeoutMs = intOption(values['detect-timeout-ms'], 'detect-timeout-ms');
  if (adminPort instanceof Error || drainOpt instanceof Error || detectTimeoutMs instanceof Error) {
    const bad = [adminPort, drainOpt, detectTimeoutMs].find((v) => v instanceof Error) as Error;
    console.error(`trellis proxy: ${bad.message}`);
    return 2;
  }
  const tracing = tracingOption(values['tracing-collector'] ?? process.env.TRELLIS_TRACING_COLLECTOR, values['tracing-sampling'] ?? process.env.TRELLIS_TRACING_SAMPLING);
  if (tracing instanceof Error) {
    console.error(`trellis proxy: ${tracing.message}`);
    return 2;
  }
  tuneProxyRuntime();
  const drainMs = drainOpt ?? DEFAULT_DRAIN_MS;
  let jwksCa: string | undefined;
  if (values['jwks-ca'] !== undefined) {
    try {
      jwksCa = readFileSync(values['jwks-ca'], 'utf8');
    } catch (err) {
      console.error(`trellis proxy: --jwks-ca: ${(err as Error).message}`);
      return 2;
    }
  }

  const loaded = loadBootstrapFile(file);
  for (const w of loaded.warnings) logLine('warn', 'bootstrap_warning', { file, warning: w });
  if (!loaded.ok) {
    console.error(`trellis proxy: ${file} is not a valid bootstrap:\n${formatErrors(loaded.errors)}`);
    return 2;
  }
  let boot = loaded.bootstrap;
  const log = (event: string, fields: Record<string, unknown> = {}): void => {
    if (QUIET_EVENTS.has(event)) return;
    logLine(WARN_EVENTS.has(event) ? 'warn' : 'info', event, fields);
  };

  // Workload identity first: the proxy serves mTLS from its first config.
  let identity: WorkloadIdentity | undefined;
  let joinToken: string | (() => string) | undefined;
  const saFile = saTokenFile({ ...(values['sa-token-file'] ? { file: values['sa-token-file'] } : {}) });
  if (saFile) {
    try {
      readFileSync(saFile, 'utf8');
    } catch (err) {
      console.error(`trellis proxy: --sa-token-file: ${(err as Error).message}`);
      return 2;
    }
    // Re-read for every CSR: the kubelet rotates a projected token in place.
    joinToken = () => readFileSync(saFile, 'utf8').trim();
  } else {
    try {
      joinToken = resolveJoinToken({
        ...(values['join-token'] ? { token: values['join-token'] } : {}),
        ...(values['join-token-file'] ? { file: values['join-token-file'] } : {}),
      });
    } catch (err) {
      console.error(`trellis proxy: --join-token-file: ${(err as Error).message}`);
      return 2;
    }
  }
  const adsTls = boot.dynamicResources?.ads.tls === true;
  if (adsTls && !joinToken) {
    console.error('trellis proxy: the bootstrap asks for xDS over TLS (ads.tls), which needs a workload identity: pass --join-token (or TRELLIS_JOIN_TOKEN)');
    return 2;
  }
  if (joinToken) {
    const adsHost = boot.dynamicResources?.ads.address.split(',')[0]?.replace(/:\d+$/, '');
    const url = values['identity-url'] ?? process.env['TRELLIS_IDENTITY_URL'] ?? (adsHost ? `${adsTls ? 'https' : 'http'}://${adsHost}:15080` : undefined);
    if (!url) {
      console.error('trellis proxy: a join token needs --identity-url (or TRELLIS_IDENTITY_URL, or an ADS address in the bootstrap)');
      return 2;
    }
    const windowText = process.env['TRELLIS_IDENTITY_ROLLOVER_WINDOW'];
    const rolloverWindowMs = windowText === undefined || windowText === '' ? undefined : parseDuration(windowText);
    if (rolloverWindowMs === undefined && windowText) {
      console.error(`trellis proxy: TRELLIS_IDENTITY_ROLLOVER_WINDOW: must be a duration such as 10s or 5m (got ${JSON.stringify(windowText)})`);
      return 2;
    }
    let caBundle: string | undefined;
    const caFile = values['ca-file'] ?? process.env['TRELLIS_CA_FILE'];
    if (caFile) {
      try {
        caBundle = readFileSync(caFile, 'utf8');
      } catch (err) {
        console.error(`trellis proxy: --ca-file: ${(err as Error).message}`);
        return 2;
      }
    }
    identity = createWorkloadIdentity({ ca: createCaClient({ baseUrl: url, joinToken, ...(caBundle ? { caBundle } : {}) }), log, ...(rolloverWindowMs === undefined ? {} : { rolloverWindowMs }) });
    const got = await identity.start();
    if (!got.ok) {
      logLine('error', 'identity_failed', { code: got.code, error: got.message, url });
      return 1;
    }
    log('identity_ready', { spiffeId: got.credentials.spiffeId, expiresAt: got.credentials.expiresAt.toISOString() });
  }

  // The admin token (proxy/admin.ts): the bootstrap's trellis.adminToken, else
  // TRELLIS_ADMIN_TOKEN, else a random one; it goes to the control plane in
  // the node metadata, which is how it can tap this proxy.
  const envToken = process.env['TRELLIS_ADMIN_TOKEN'];
  if (envToken !== undefined && envToken !== '' && adminTokenOf({ metadata: { trellis: { adminToken: envToken } } }) === undefined) {
    logLine('error', 'config_invalid', { error: 'TRELLIS_ADMIN_TOKEN: must be 16 to 256 printable characters without spaces' });
    return 2;
  }
  boot = { ...boot, node: withAdminToken(boot.node, envToken || randomBytes(24).toString('base64url')) };

  // Where configs come from: the file, or xDS when the bootstrap says so.
  let source: ConfigSource;
  let reload: ((reason: string) => void) | undefined;
  let first: ProxyConfig;
  let xdsState: (() => XdsSourceState) | undefined;
  if (boot.dynamicResources) {
    // Loaded only here: the xDS client brings grpc-js and protobufjs (~25 MB
    // of a proxy's memory) that a proxy serving a static bootstrap never uses.
    const { startXdsSource } = await import('../../proxy/xds-source.ts');
    const xds = startXdsSource({
      serverUri: boot.dynamicResources.ads.address,
      ...(boot.dynamicResources.ads.apiType === undefined ? {} : { apiType: boot.dynamicResources.ads.apiType }),
      node: boot.node,
      ...(adsTls && identity ? { credentials: xdsChannelCredentials(identity) } : {}),
      ...(identity ? { secrets: trustBundleSubscription(identity) } : {}),
      // A plugin whose code does not load is NACKed, the config in use kept.
      check: preflightPlugins,
    });
    source = xds;
    xdsState = () => xds.state();
    log('waiting_for_xds', { server: boot.dynamicResources.ads.address, node: boot.node.id });
    const onSignal: { fn?: () => void } = {};
    // The xDS client's reconnect timer does not hold the process open; until
    // the first config binds listeners, this does (an unreachable control
    // plane at start-up is waited for, not a silent exit).
    const keepAlive = setInterval(() => {}, 60_000);
    const got = await new Promise<ProxyConfig | 'signal'>((resolve) => {
      const off = xds.onConfig((c) => {
        queueMicrotask(off);
        resolve(c);
      });
      onSignal.fn = () => resolve('signal');
      process.on('SIGTERM', onSignal.fn);
      process.on('SIGINT', onSignal.fn);
    });
    clearInterval(keepAlive);
    process.removeListener('SIGTERM', onSignal.fn!);
    process.removeListener('SIGINT', onSignal.fn!);
    if (got === 'signal') {
      xds.close();
      return 0;
    }
    first = got;
  } else {
    const fsrc = fileConfigSource(file, boot, {
      watch: !values['no-watch'],
      onInvalid: (errors) => log('config_invalid', { file, errors: errors.split('\n') }),
    });
    source = fsrc;
    reload = (reason) => fsrc.reload(reason);
    first = boot.config;
  }

  const admin = { address: boot.admin.address, port: adminPort ?? boot.admin.port };
  // Injected in Kubernetes: the app's probes the kubelet now sends to the admin port.
  let appProbers;
  try {
    appProbers = parseAppProbers(process.env['TRELLIS_APP_PROBERS']);
  } catch (err) {
    source.close();
    identity?.stop();
    console.error(`trellis proxy: ${(err as Error).message}`);
    return 2;
  }
  const tlsOptions = identity ? { ...meshTlsProxyOptions(identity, { log }), identity } : {};
  let proxyRef: Proxy | undefined;
  const started = await startProxy({
    config: first,
    node: boot.node,
    admin,
    log,
    ...(appProbers.size > 0 ? { appProbers } : {}),
    ...(detectTimeoutMs === undefined ? {} : { detectTimeoutMs }),
    ...(jwksCa === undefined ? {} : { security: { jwks: { ca: jwksCa } } }),
    ...(tracing === undefined ? {} : { telemetry: { tracing } }),
    ...tlsOptions,
    // Gateway mode: the operator's certificates by SNI (proxy/gateway-tls.ts).
    ...gatewayTlsProxyOptions(boot.node, tlsOptions, () => proxyRef?.config, log),
    // Egress TLS origination (proxy/egress-tls.ts) before mesh mTLS.
    upstreamTls: composeUpstreamTls(createEgressTls(log), (tlsOptions as { upstreamTls?: UpstreamTlsHook }).upstreamTls),
  });
  if (!started.ok) {
    source.close();
    identity?.stop();
    for (const e of started.errors) logLine('error', 'start_failed', { error: e });
    return started.portInUse ? EXIT_PORT_IN_USE : 1;
  }
  const proxy: Proxy = started.proxy;
  proxyRef = proxy;
  // trellis_xds_connected / _disconnects_total / _warming_resources on the admin's /stats/prometheus.
  if (xdsState) registerXdsStats(proxy.stats.registry, xdsState);
  // Metrics for a control plane on another host (proxy/metrics-listener.ts): mTLS, the control plane's identity only.
  let metrics: MetricsListener | undefined;
  const metricsAt = metricsAddressOf(boot.node);
  if (metricsAt !== undefined && identity) {
    const cut = metricsAt.lastIndexOf(':');
    const m = await startMetricsListener(metricsAt.slice(0, cut).replace(/^\[|\]$/g, ''), Number(metricsAt.slice(cut + 1)), { identity, expose: () => proxy.stats.registry.expose() });
    if (!m.ok) {
      logLine('error', 'start_failed', { error: m.error });
      source.close();
      identity.stop();
      await proxy.stop({ drainMs: 0 });
      return m.code === 'EADDRINUSE' ? EXIT_PORT_IN_USE : 1;
    }
    metrics = m.listener;
  } else if (metricsAt !== undefined) log('metrics_listener_skipped', { reason: 'trellis.metrics needs a workload identity (a join token)' });
  log('started', { version: proxy.version, listeners: Object.fromEntries(proxy.ports), admin: { address: admin.address, port: proxy.adminPort }, ...(metrics ? { metrics: metricsAt } : {}), pid: process.pid });

  source.onConfig((c) => {
    void proxy.applyConfig(c);
  });

  return new Promise<number>((resolve) => {
    let stopping = false;
    const onHup = (): void => {
      log('reload_requested', { signal: 'SIGHUP' });
      if (reload) reload('SIGHUP');
    };
    const onStop = (signal: string) => (): void => {
      if (stopping) {
        log('forced_exit', { signal });
        resolve(1);
        process.exit(1);
      }
      stopping = true;
      log('shutdown', { signal, drainMs });
      source.close();
      identity?.stop();
      void metrics?.close();
      void proxy.stop({ drainMs }).then(() => {
        process.removeListener('SIGHUP', onHup);
        process.removeListener('SIGTERM', onTerm);
        process.removeListener('SIGINT', onInt);
        log('exit', { code: 0 });
        resolve(0);
      });
    };
    const onTerm = onStop('SIGTERM');
    const onInt = onStop('SIGINT');
    process.on('SIGHUP', onHup);
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
  });
}
