// Two of the HTTP filters the proxy honours from an HCM's `httpFilters` (JWT
// authentication, RBAC; plugins are plugins/plugins.ts), turned into layers
// that sit in the listener's stack just before the router, in the order the
// filters are written. One Security
// object lives as long as the proxy: it owns the JWKS cache (kept across
// config swaps) and the authz / authn counters.
import type { FilterChainSpec, HttpFilterSpec, ProxyConfig } from '../config/types.ts';

/** A TCP chain's network RBAC filters together: null when the connection
 * may go on, else the labels of the denial (already counted). */
export type ConnectionAuthz = (s: AuthzSubject) => PolicyLabels | null;
import type { Layer } from '../http/exchange.ts';
import { JwksStore, type JwksOptions } from '../jwks.ts';
import type { Counter, Registry } from '../stats.ts';
import { compileRbac, rbacLayer, type AuthzSubject, type PolicyLabels } from './authz.ts';
import { jwtAuthnLayer } from './jwt.ts';

export interface SecurityOptions {
  /** HTTPS trust, refresh throttle and backoff for remote JWKS. */
  readonly jwks?: Omit<JwksOptions, 'log'>;
}

export class Security {
  readonly jwks: JwksStore;
  /** trellis_authz_denied_total{policy,namespace} */
  readonly denied: Counter;
  /** trellis_jwt_authn_failures_total{reason} */
  readonly jwtFailures: Counter;

  constructor(opts: SecurityOptions & { registry: Registry; log?: JwksOptions['log'] }) {
    this.jwks = new JwksStore({ ...opts.jwks, ...(opts.log ? { log: opts.log } : {}) });
    this.denied = opts.registry.counter('trellis_authz_denied_total', 'Requests denied by an authorization policy.', ['policy', 'namespace']);
    this.jwtFailures = opts.registry.counter('trellis_jwt_authn_failures_total', 'Requests rejected by JWT authentication, by reason.', ['reason']);
  }

  /** The layer of one of an HCM's JWT authentication or RBAC filters. */
  layer(f: Extract<HttpFilterSpec, { kind: 'rbac' | 'jwt_authn' }>): Layer {
    return f.kind === 'rbac' ? rbacLayer(f.rbac, { denied: this.denied }) : jwtAuthnLayer(f.jwt, { jwks: this.jwks, failures: this.jwtFailures });
  }

  /** The chain's network RBAC filters as one decision, or undefined when it has none. */
  connectionAuthz(chain: FilterChainSpec): ConnectionAuthz | undefined {
    const filters = (chain.networkRbac ?? []).map((f) => compileRbac(f.rbac, { denied: this.denied }));
    if (filters.length === 0) return undefined;
    return (s) => {
      for (const f of filters) {
        const l = f.denied(s);
        if (l !== null) return l;
      }
      return null;
    };
  }

  /** After a config is active: stop refreshing JWKS it no longer names. */
  activate(config: ProxyConfig): void {
    const keep = new Set<string>();
    for (const l of config.listeners) {
      for (const c of l.filterChains) {
        for (const f of c.http?.httpFilters ?? []) {
          if (f.kind === 'jwt_authn') for (const p of f.jwt.providers.values()) keep.add(JwksStore.keyOf(p.jwks));
        }
      }
    }
    this.jwks.retain(keep);
  }

  close(): void {
    this.jwks.close();
  }
}
