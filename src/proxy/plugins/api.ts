// The TypeScript plugin API: everything a plugin author sees. A plugin is a
// script (TypeScript or JavaScript) that calls the global `definePlugin`
// once with a factory; the factory receives the host (configuration, log,
// metrics, HTTP calls) and returns the hooks it implements. Type-only
// imports are allowed (they are stripped):
//
//   import type { PluginFactory } from 'trellis/src/proxy/plugins/api.ts';
//   definePlugin(((host) => ({
//     onRequestHeaders(req) {
//       if (req.headers.get('x-user') === 'mallory') return req.respond(403, 'blocked\n');
//       req.headers.set('x-checked-by', host.name);
//     },
//   })) satisfies PluginFactory);
//
// A plugin runs in its own worker thread (docs/plugins.md): it shares no
// memory with the proxy, has no `require`, `process` or file system, and a
// throw, a hook that misses its deadline, a runaway loop or running out of
// memory fails only the requests it was handling (fail-open or fail-closed
// as configured); the proxy restarts the worker and goes on.

/** Header names are lower-case; several values of one name are kept in order. */
export interface PluginHeaders {
  get(name: string): string | undefined;
  getAll(name: string): string[];
  has(name: string): boolean;
  /** Replace every value of `name` with one. */
  set(name: string, value: string): void;
  add(name: string, value: string): void;
  remove(name: string): void;
  entries(): [string, string][];
}

/** Returned by a hook to answer from the proxy instead of the upstream. */
export interface LocalReply {
  readonly status: number;
}

export interface PluginRequest {
  method: string;
  readonly scheme: string;
  authority: string;
  /** Path and query, as received (normalised by the proxy). */
  path: string;
  readonly headers: PluginHeaders;
  /** Per-request scratch space: the same object in every hook of this request (dropped when it ends). */
  readonly state: Record<string, unknown>;
  respond(status: number, body?: string | Uint8Array, headers?: Record<string, string>): LocalReply;
}

export interface PluginResponse {
  status: number;
  readonly headers: PluginHeaders;
  /** Replace the upstream's response with this one. */
  respond(status: number, body?: string | Uint8Array, headers?: Record<string, string>): LocalReply;
}

/** A hook may return nothing (continue), a LocalReply, or a Promise of either. */
type Outcome = void | undefined | LocalReply;
type MaybeAsync<T> = T | Promise<T>;

/** Body hooks receive the whole body (buffered up to maxBodyBytes) and may return a replacement. */
export interface PluginHooks {
  onRequestHeaders?(req: PluginRequest): MaybeAsync<Outcome>;
  onRequestBody?(body: Uint8Array, req: PluginRequest): MaybeAsync<Outcome | Uint8Array | string>;
  onRequestTrailers?(trailers: PluginHeaders, req: PluginRequest): MaybeAsync<Outcome>;
  onResponseHeaders?(res: PluginResponse, req: PluginRequest): MaybeAsync<Outcome>;
  onResponseBody?(body: Uint8Array, res: PluginResponse, req: PluginRequest): MaybeAsync<Outcome | Uint8Array | string>;
  onResponseTrailers?(trailers: PluginHeaders, res: PluginResponse, req: PluginRequest): MaybeAsync<Outcome>;
}

export interface Counter { inc(n?: number): void }
export interface Gauge { set(v: number): void; inc(n?: number): void; dec(n?: number): void }
export interface Histogram { observe(v: number): void }

export interface HttpCallResponse {
  status: number;
  headers: PluginHeaders;
  body: Uint8Array;
  text(): string;
}

export interface PluginHost {
  /** The plugin's name (its metric label). */
  readonly name: string;
  /** PluginConfig.configuration, verbatim (JSON.parse it if it is JSON). */
  readonly config: string;
  readonly log: { debug(msg: string): void; info(msg: string): void; warn(msg: string): void; error(msg: string): void };
  /** Metrics appear on the proxy's /stats/prometheus as trellis_plugin_<name>{plugin="..."}; names are [a-z_][a-z0-9_]*. */
  readonly metrics: {
    counter(name: string, help?: string): Counter;
    gauge(name: string, help?: string): Gauge;
    histogram(name: string, help?: string, buckets?: number[]): Histogram;
  };
  /** An HTTP request to a cluster the proxy knows (its balancing, TLS and circuit breaking apply). */
  httpCall(cluster: string, req: { method?: string; path: string; authority?: string; headers?: Record<string, string>; body?: string | Uint8Array; timeoutMs?: number }): Promise<HttpCallResponse>;
}

export type PluginFactory = (host: PluginHost) => PluginHooks;

declare global {
  function definePlugin(factory: PluginFactory): void;
}
