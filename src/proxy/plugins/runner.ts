// What the plugin layer (layer.ts) asks of a plugin runtime, whatever runs
// the plugin: a TypeScript plugin or a proxy-wasm module, each in its worker
// (worker-runner.ts). A request opens a stream (a proxy-wasm HTTP context); each hook call is one
// asynchronous round trip whose answer is a tagged result, never a throw:
// the runtime turns a plugin's throw, timeout or crash into `fail`, and the
// layer applies the filter's fail-open / fail-closed policy.
import type { HeaderList } from '../http/exchange.ts';

export type HookName = 'requestHeaders' | 'requestBody' | 'responseHeaders' | 'responseBody';

/** The request as a plugin sees and may change it. */
export interface PluginRequestHead {
  method: string;
  scheme: string;
  authority: string;
  path: string;
  headers: HeaderList;
}

export type HookInput =
  | { readonly hook: 'requestHeaders'; readonly request: PluginRequestHead }
  /** The whole request body and its trailers, once the body has ended. */
  | { readonly hook: 'requestBody'; readonly request: PluginRequestHead; readonly body: Buffer; readonly trailers: HeaderList | null }
  | { readonly hook: 'responseHeaders'; readonly request: PluginRequestHead; readonly status: number; readonly headers: HeaderList }
  /** The whole response (headers, body, trailers) once it has ended. */
  | { readonly hook: 'responseBody'; readonly request: PluginRequestHead; readonly status: number; readonly headers: HeaderList; readonly body: Buffer; readonly trailers: HeaderList | null };

export type FailReason = 'throw' | 'timeout' | 'crash' | 'unavailable';

export type HookOutput =
  /** Go on, with whatever the plugin changed (absent: unchanged). */
  | { readonly kind: 'continue'; readonly request?: PluginRequestHead; readonly status?: number; readonly headers?: HeaderList; readonly body?: Buffer; readonly trailers?: HeaderList | null }
  /** Answer from the proxy with this response; the upstream is not (or no longer) involved. */
  | { readonly kind: 'reply'; readonly status: number; readonly headers: HeaderList; readonly body: Buffer }
  | { readonly kind: 'fail'; readonly reason: FailReason; readonly message: string };

export interface PluginStream {
  call(input: HookInput): Promise<HookOutput>;
  /** The request is over (answered, failed or reset). */
  close(): void;
}

export interface PluginRunner {
  readonly name: string;
  /** The hooks the plugin implements; the layer skips the others (no round trip). */
  readonly hooks: ReadonlySet<HookName>;
  openStream(): PluginStream;
  /** Stop once the streams open now have closed (a config swap replaced it). */
  retire(): void;
  /** Stop now. */
  close(): void;
}
