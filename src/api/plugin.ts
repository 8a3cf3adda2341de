// Plugin (trellis.dev/v1alpha1): a TypeScript plugin or a proxy-wasm module
// run by the proxies of the selected workloads, in the spirit of Istio's
// WasmPlugin (docs/plugins.md).
//
//   spec.selector        workload labels; absent: every workload of the namespace
//                        (in the mesh root namespace trellis-system: the whole mesh)
//   spec.type            typescript | wasm
//   spec.phase           authn (before JWT authentication) | authz (before
//                        authorization) | stats (after authorization) |
//                        before-router (last, the default)
//   spec.order           within a phase, lower first (then namespace/name)
//   spec.traffic         inbound (the default: calls into the workload) | outbound | all
//   spec.source          exactly one of inline (TypeScript source, or base64 wasm),
//                        file (a path on the proxy's host) or url + sha256
//   spec.config          a string handed to the plugin verbatim (JSON by convention)
//   spec.failurePolicy   closed (the default: a failing plugin fails the request) | open
//   spec.hookTimeout     deadline of one hook call (default 500ms)
//   spec.bodies          wasm: hand request/response bodies and trailers to the module
//                        (each buffered whole); TypeScript plugins get them when they have body hooks
//
// The control plane writes it into the HTTP filters of the selected proxies'
// listeners as Envoy's envoy.extensions.filters.http.wasm.v3.Wasm
// (translate/plugins.ts); a proxy that cannot load it NACKs and keeps the
// config it had.
import { Type, type Static } from '@sinclair/typebox';
import { Closed, Duration, StringEnum, StringMap, parseDuration } from './schema-common.ts';
import { isHttpUrl } from '../lib/http-url.ts';

export const PLUGIN_PHASES = ['authn', 'authz', 'stats', 'before-router'] as const;
export const MAX_INLINE_PLUGIN_BYTES = 512 * 1024;

export const PluginSpec = Closed({
  selector: Type.Optional(StringMap()),
  type: StringEnum(['typescript', 'wasm'] as const),
  phase: Type.Optional(StringEnum(PLUGIN_PHASES, { default: 'before-router' })),
  order: Type.Optional(Type.Integer({ minimum: -1000, maximum: 1000 })),
  traffic: Type.Optional(StringEnum(['inbound', 'outbound', 'all'] as const, { default: 'inbound' })),
  source: Closed({
    inline: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_INLINE_PLUGIN_BYTES * 2 })),
    file: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    url: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
    sha256: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  }),
  config: Type.Optional(Type.String({ maxLength: 65536 })),
  failurePolicy: Type.Optional(StringEnum(['open', 'closed'] as const, { default: 'closed' })),
  hookTimeout: Type.Optional(Duration),
  bodies: Type.Optional(Type.Boolean()),
  rootId: Type.Optional(Type.String({ maxLength: 256 })),
});
export type PluginSpec = Static<typeof PluginSpec>;

/** Field errors the schema cannot state. */
export function checkPlugin(spec: PluginSpec, report: (path: (string | number)[], message: string) => void): void {
  const s = spec.source;
  const given = (['inline', 'file', 'url'] as const).filter((k) => s[k] !== undefined);
  if (given.length !== 1) report(['spec', 'source'], `must give exactly one of inline, file or url (got ${given.length === 0 ? 'none' : given.join(', ')})`);
  if (s.url !== undefined) {
    if (!isHttpUrl(s.url)) report(['spec', 'source', 'url'], `must be an http(s) URL (got "${s.url}")`);
    if (s.sha256 === undefined) report(['spec', 'source', 'sha256'], 'is required with url (the proxy checks the downloaded code against it)');
  }
  if (s.sha256 !== undefined) {
    if (s.url === undefined) report(['spec', 'source', 'sha256'], 'only goes with url');
    else if (!/^[0-9a-f]{64}$/.test(s.sha256)) report(['spec', 'source', 'sha256'], 'must be 64 lower-case hex digits');
  }
  if (s.file !== undefined && !s.file.startsWith('/')) report(['spec', 'source', 'file'], `must be an absolute path on the proxy's host (got "${s.file}")`);
  if (s.inline !== undefined) {
    if (spec.type === 'wasm') {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s.inline)) report(['spec', 'source', 'inline'], 'must be the module in base64 for type wasm');
      else if (Buffer.byteLength(s.inline, 'base64') > MAX_INLINE_PLUGIN_BYTES) report(['spec', 'source', 'inline'], `is larger than ${MAX_INLINE_PLUGIN_BYTES} bytes: serve it by url + sha256`);
    } else if (Buffer.byteLength(s.inline) > MAX_INLINE_PLUGIN_BYTES) report(['spec', 'source', 'inline'], `is larger than ${MAX_INLINE_PLUGIN_BYTES} bytes: serve it by url + sha256`);
  }
  if (spec.bodies !== undefined && spec.type !== 'wasm') report(['spec', 'bodies'], 'only applies to type wasm (a TypeScript plugin gets bodies when it has body hooks)');
  if (spec.hookTimeout !== undefined) {
    const ms = parseDuration(spec.hookTimeout);
    if (ms === undefined || ms <= 0 || ms > 60_000) report(['spec', 'hookTimeout'], 'must be more than 0 and at most 60s');
  }
}
