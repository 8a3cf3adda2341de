// Envoy xDS v3 resources (proto3-JSON shape) -> the normalized ProxyConfig.
// Both the bootstrap file and xDS come through here. Single-resource parsers
// return Parsed<T>; buildProxyConfig parses a whole set, joins inline and
// EDS endpoints, and checks the set is internally consistent.
import type { ClusterSpec, ListenerSpec, LocalityEndpoints, ProxyConfig, RouteConfigSpec } from './types.ts';
import { Issues, formatFieldError, type FieldError, type Parsed } from './field-error.ts';
import { readListener, type ParsedListener } from './envoy-listener.ts';
import { readRouteConfiguration } from './envoy-route.ts';
import { readCluster, type ParsedCluster } from './envoy-cluster.ts';
import { readClusterLoadAssignment, type ParsedLoadAssignment } from './envoy-endpoint.ts';
import { readClusterResilience, readRouteConfigResilience } from './envoy-resilience.ts';

export { formatFieldError, type FieldError, type Parsed } from './field-error.ts';
export { inlineRouteName, type ParsedListener } from './envoy-listener.ts';
export type { ParsedCluster } from './envoy-cluster.ts';
export type { ParsedLoadAssignment } from './envoy-endpoint.ts';

function single<T>(path: string, read: (issues: Issues) => T | undefined): Parsed<T> {
  const issues = new Issues();
  const value = issues.within({ path }, () => read(issues));
  if (value === undefined || issues.errors.length > 0) {
    return { ok: false, errors: issues.errors.length > 0 ? issues.errors : [{ path, message: 'invalid' }], warnings: issues.warnings };
  }
  return { ok: true, value, warnings: issues.warnings };
}

export function parseListener(json: unknown, path = 'listener'): Parsed<ParsedListener> {
  return single(path, (issues) => readListener(json, path, issues));
}

export function parseRouteConfiguration(json: unknown, path = 'routeConfiguration'): Parsed<RouteConfigSpec> {
  return single(path, (issues) => readRouteConfiguration(json, path, issues));
}

export function parseCluster(json: unknown, path = 'cluster'): Parsed<ParsedCluster> {
  return single(path, (issues) => readCluster(json, path, issues));
}

export function parseClusterLoadAssignment(json: unknown, path = 'clusterLoadAssignment'): Parsed<ParsedLoadAssignment> {
  return single(path, (issues) => readClusterLoadAssignment(json, path, issues));
}

export interface ProxyConfigInput {
  readonly version: string;
  readonly listeners?: readonly unknown[];
  /** RouteConfigurations (RDS). */
  readonly routeConfigs?: readonly unknown[];
  readonly clusters?: readonly unknown[];
  /** ClusterLoadAssignments (EDS). */
  readonly endpoints?: readonly unknown[];
}

export interface BuildOptions {
  /** Dangling references (a route naming an unknown cluster, an HCM naming
   * an unknown route configuration) are errors for a static file and
   * warnings for xDS, where the missing piece may arrive next. Default warn. */
  readonly references?: 'error' | 'warn';
  /** Path prefixes used in messages (the bootstrap uses staticResources.*). */
  readonly paths?: { readonly listeners?: string; readonly routeConfigs?: string; readonly clusters?: string; readonly endpoints?: string };
}

export type BuildResult =
  | { readonly ok: true; readonly config: ProxyConfig; readonly warnings: readonly string[] }
  | { readonly ok: false; readonly errors: readonly FieldError[]; readonly warnings: readonly string[] };

export function buildProxyConfig(input: ProxyConfigInput, opts: BuildOptions = {}): BuildResult {
  const issues = new Issues();
  const p = {
    listeners: opts.paths?.listeners ?? 'listeners',
    routeConfigs: opts.paths?.routeConfigs ?? 'routeConfigs',
    clusters: opts.paths?.clusters ?? 'clusters',
    endpoints: opts.paths?.endpoints ?? 'endpoints',
  };

  const listeners: ListenerSpec[] = [];
  const listenerPaths = new Map<string, string>();
  const routeConfigs = new Map<string, RouteConfigSpec>();
  const routePaths = new Map<string, string>();
  const boundAt = new Map<string, string>();
  (input.listeners ?? []).forEach((json, i) => {
    const path = `${p.listeners}[${i}]`;
    issues.within({ path }, () => {
      const l = readListener(json, path, issues);
      if (!l) return;
      const { spec } = l;
      if (listenerPaths.has(spec.name)) return issues.error(`${path}.name`, `duplicate listener name (also ${listenerPaths.get(spec.name)})`);
      const bind = `${spec.address}:${spec.port}`;
      if (boundAt.has(bind)) return issues.error(`${path}.address`, `${bind} is already used by listener "${boundAt.get(bind)}"`);
      listenerPaths.set(spec.name, path);
      boundAt.set(bind, spec.name);
      listeners.push(spec);
      for (const rc of l.inlineRoutes) {
        routeConfigs.set(rc.name, rc);
        routePaths.set(rc.name, path);
      }
    });
  });

  (input.routeConfigs ?? []).forEach((json, i) => {
    const path = `${p.routeConfigs}[${i}]`;
    issues.within({ path }, () => {
      const rc = readRouteConfiguration(json, path, issues);
      if (!rc) return;
      if (routeConfigs.has(rc.name)) return issues.error(`${path}.name`, `duplicate route configuration name (also ${routePaths.get(rc.name)})`);
      routeConfigs.set(rc.name, rc);
      routePaths.set(rc.name, path);
    });
  });

  const clusters = new Map<string, ClusterSpec>();
  const clusterPaths = new Map<string, string>();
  const endpoints = new Map<string, readonly LocalityEndpoints[]>();
  (input.clusters ?? []).forEach((json, i) => {
    const path = `${p.clusters}[${i}]`;
    issues.within({ path }, () => {
      const c = readCluster(json, path, issues);
      if (!c) return;
      if (clusters.has(c.spec.name)) return issues.error(`${path}.name`, `duplicate cluster name (also ${clusterPaths.get(c.spec.name)})`);
      clusters.set(c.spec.name, c.spec);
      clusterPaths.set(c.spec.name, path);
      if (c.inlineEndpoints) endpoints.set(c.spec.name, c.inlineEndpoints);
    });
  });

  // EDS: assignments are named by the cluster's edsServiceName (or its name).
  const byServiceName = new Map<string, string>();
  for (const c of clusters.values()) if (c.discovery === 'eds') byServiceName.set(c.edsServiceName ?? c.name, c.name);
  const claPaths = new Map<string, string>();
  (input.endpoints ?? []).forEach((json, i) => {
    const path = `${p.endpoints}[${i}]`;
    issues.within({ path }, () => {
      const cla = readClusterLoadAssignment(json, path, issues);
      if (!cla) return;
      issues.resource = { path, name: cla.clusterName };
      if (claPaths.has(cla.clusterName)) return issues.error(`${path}.clusterName`, `duplicate assignment (also ${claPaths.get(cla.clusterName)})`);
      claPaths.set(cla.clusterName, path);
      const cluster = byServiceName.get(cla.clusterName);
      if (cluster === undefined) {
        const c = clusters.get(cla.clusterName);
        issues.warn(`${path}.clusterName`, c ? `cluster "${c.name}" is not an EDS cluster; assignment ignored` : 'no EDS cluster uses this name; assignment ignored');
        return;
      }
      endpoints.set(cluster, cla.localities);
    });
  });

  // Consistency: every reference resolves.
  const dangling = (resourcePath: string, name: string, msg: string) =>
    issues.within({ path: resourcePath, name }, () => (opts.references === 'error' ? issues.error(resourcePath, msg) : issues.warn(resourcePath, msg)));
  for (const l of listeners) {
    const lp = listenerPaths.get(l.name)!;
    for (const c of l.filterChains) {
      if (c.http && !routeConfigs.has(c.http.routeConfigName)) dangling(lp, l.name, `filter chain "${c.name}": route configuration "${c.http.routeConfigName}" is not defined`);
      for (const wc of c.tcp?.clusters ?? []) if (!clusters.has(wc.name)) dangling(lp, l.name, `filter chain "${c.name}": cluster "${wc.name}" is not defined`);
    }
  }
  for (const rc of routeConfigs.values()) {
    const rp = routePaths.get(rc.name)!;
    for (const vh of rc.virtualHosts) {
      for (const r of vh.routes) {
        if (r.action.kind !== 'route') continue;
        for (const wc of r.action.clusters) {
          if (!clusters.has(wc.name)) dangling(rp, rc.name, `virtual host "${vh.name}": route ${r.name ? `"${r.name}" ` : ''}names cluster "${wc.name}", which is not defined`);
        }
      }
    }
  }
  for (const c of clusters.values()) {
    if (c.discovery === 'eds' && !endpoints.has(c.name) && (input.endpoints?.length ?? 0) > 0) {
      const cp = clusterPaths.get(c.name)!;
      issues.within({ path: cp, name: c.name }, () => issues.warn(cp, `no ClusterLoadAssignment for EDS cluster "${c.name}" yet`));
    }
  }

  // Resilience fields kept under `extensions`, read strictly here so that a
  // bad one is NACKed (the proxy reads them again when it applies the config).
  for (const rc of routeConfigs.values()) {
    const rp = routePaths.get(rc.name)!;
    issues.within({ path: rp, name: rc.name }, () => readRouteConfigResilience(rc, rp, clusters, issues));
  }
  for (const c of clusters.values()) {
    const cp = clusterPaths.get(c.name)!;
    issues.within({ path: cp, name: c.name }, () => void readClusterResilience(c.extensions, cp, issues));
  }

  if (issues.errors.length > 0) return { ok: false, errors: issues.errors, warnings: issues.warnings };
  return { ok: true, config: { version: input.version, listeners, routeConfigs, clusters, endpoints }, warnings: issues.warnings };
}

/** All errors of a failed build, one per line, for logs and NACK details. */
export function formatErrors(errors: readonly FieldError[]): string {
  return errors.map(formatFieldError).join('\n');
}
