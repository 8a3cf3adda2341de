// Plugin resources (src/api/plugin.ts) -> HTTP filters on the listeners of
// the proxies they select: one envoy.extensions.filters.http.wasm.v3.Wasm
// per plugin, placed by phase among the filters the other translators wrote
// (jwt_authn, rbac), the router last:
//
//   [authn plugins] jwt_authn... [authz plugins] rbac... [stats plugins] [before-router plugins] router
//
// Within a phase by `order`, then namespace/name. The proxy reads them back
// in src/proxy/config/envoy-wasm.ts and runs them (src/proxy/plugins/).
// Which plugins: those of the node's namespace whose selector matches its
// workload's labels (or that have none), and those of the mesh root
// namespace without a selector. Proxyless clients and node proxies get none.
import type { PluginSpec } from '../../api/plugin.ts';
import { parseDuration } from '../../api/schema-common.ts';
import type { MeshState, PluginResource, ProxyNode } from './model.ts';
import { scopeTiers } from './mtls.ts';
import { nodeWorkload } from './services.ts';
import type { TranslationParts } from './translate.ts';
import { withHcmConfig } from './filters.ts';

export const WASM_FILTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm';
export const WASM_FILTER_NAME = 'envoy.filters.http.wasm';
const JWT_NAME = 'envoy.filters.http.jwt_authn';
const RBAC_NAME = 'envoy.filters.http.rbac';
const ROUTER_NAME = 'envoy.filters.http.router';
const PHASE_RANK: Record<NonNullable<PluginSpec['phase']>, number> = { authn: 0, authz: 1, stats: 2, 'before-router': 3 };

/** The plugins that apply to `node`, in filter order. */
export function pluginsFor(state: MeshState, node: ProxyNode): PluginResource[] {
  const all = state.plugins;
  if (!all || all.length === 0 || node.kind === 'proxyless' || node.kind === 'node-proxy') return [];
  const chosen = scopeTiers(all, node.namespace, nodeWorkload(state, node)?.labels).flat();
  const key = (p: PluginResource) => `${p.metadata.namespace ?? 'default'}/${p.metadata.name}`;
  return [...new Map(chosen.map((p) => [key(p), p])).values()].sort((a, b) =>
    PHASE_RANK[a.spec.phase ?? 'before-router'] - PHASE_RANK[b.spec.phase ?? 'before-router']
    || (a.spec.order ?? 0) - (b.spec.order ?? 0)
    || key(a).localeCompare(key(b)));
}

/** Envoy's Wasm HTTP filter for one Plugin. */
export function wasmFilter(p: PluginResource): { name: string; typedConfig: object } {
  const s = p.spec;
  const id = `${p.metadata.namespace ?? 'default'}/${p.metadata.name}`;
  const code = s.source.url !== undefined
    ? { remote: { httpUri: { uri: s.source.url, cluster: 'plugin-source', timeout: '30s' }, sha256: s.source.sha256 } }
    : s.source.file !== undefined
      ? { local: { filename: s.source.file } }
      : s.type === 'wasm'
        ? { local: { inlineBytes: s.source.inline } }
        : { local: { inlineString: s.source.inline } };
  const config = s.config ?? '';
  const timeoutMs = s.hookTimeout === undefined ? undefined : parseDuration(s.hookTimeout);
  return {
    name: WASM_FILTER_NAME,
    typedConfig: {
      '@type': WASM_FILTER_TYPE,
      config: {
        name: id,
        rootId: s.rootId ?? '',
        // PluginConfig.fail_open: the Envoy API this control plane speaks predates failure_policy.
        failOpen: s.failurePolicy === 'open',
        ...(config !== '' ? { configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: config } } : {}),
        vmConfig: {
          vmId: id,
          runtime: s.type === 'wasm' ? 'envoy.wasm.runtime.v8' : 'trellis.plugin.runtime.typescript',
          code,
          ...(timeoutMs !== undefined || s.bodies ? {
            configuration: {
              '@type': 'type.googleapis.com/google.protobuf.Struct',
              value: { ...(timeoutMs !== undefined ? { hookTimeout: `${timeoutMs / 1000}s` } : {}), ...(s.bodies ? { bodies: true } : {}) },
            },
          } : {}),
        },
      },
    },
  };
}

/** Insert the plugins' filters into one HCM filter list, by phase. */
export function placePlugins(filters: readonly { name: string }[], plugins: readonly PluginResource[]): object[] {
  const out: object[] = [];
  const names = filters.map((f) => f.name);
  const lastIndex = (n: string) => names.lastIndexOf(n);
  const firstIndex = (n: string) => names.indexOf(n);
  const router = firstIndex(ROUTER_NAME) >= 0 ? firstIndex(ROUTER_NAME) : filters.length;
  const jwtFirst = firstIndex(JWT_NAME);
  const jwtLast = lastIndex(JWT_NAME);
  const rbacFirst = firstIndex(RBAC_NAME);
  const rbacLast = lastIndex(RBAC_NAME);
  // The index of the existing filter each phase goes before.
  const before: Record<NonNullable<PluginSpec['phase']>, number> = {
    authn: jwtFirst >= 0 ? jwtFirst : rbacFirst >= 0 ? rbacFirst : router,
    authz: rbacFirst >= 0 ? rbacFirst : jwtLast >= 0 ? jwtLast + 1 : router,
    stats: rbacLast >= 0 ? rbacLast + 1 : jwtLast >= 0 ? jwtLast + 1 : router,
    'before-router': router,
  };
  const at = new Map<number, object[]>();
  for (const p of plugins) {
    const i = before[p.spec.phase ?? 'before-router'];
    at.set(i, [...(at.get(i) ?? []), wasmFilter(p)]);
  }
  filters.forEach((f, i) => out.push(...(at.get(i) ?? []), f));
  out.push(...(at.get(filters.length) ?? []));
  return out;
}

interface ChainShape {
  filters: { name: string; typedConfig?: object }[];
}
interface ListenerShape {
  trafficDirection?: string;
  filterChains?: ChainShape[];
  defaultFilterChain?: ChainShape;
}

/** translateParts() output with the node's plugins in its HTTP listeners. */
export function applyPlugins(parts: TranslationParts, state: MeshState, node: ProxyNode): TranslationParts {
  const plugins = pluginsFor(state, node);
  if (plugins.length === 0) return parts;
  const listeners = (parts.own.listeners as ListenerShape[]).map((l) => {
    const inbound = l.trafficDirection === 'INBOUND';
    const mine = plugins.filter((p) => {
      const t = p.spec.traffic ?? 'inbound';
      return t === 'all' || (t === 'inbound') === inbound;
    });
    if (mine.length === 0) return l;
    const add = (c: ChainShape): ChainShape => withHcmConfig(c, (tc) => ({ ...tc, httpFilters: placePlugins((tc.httpFilters as { name: string }[] | undefined) ?? [], mine) }));
    return {
      ...l,
      ...(l.filterChains ? { filterChains: l.filterChains.map(add) } : {}),
      ...(l.defaultFilterChain ? { defaultFilterChain: add(l.defaultFilterChain) } : {}),
    };
  });
  return { ...parts, own: { ...parts.own, listeners } };
}
