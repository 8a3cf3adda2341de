// Messages between a plugin's worker (ts-worker.ts, wasm-worker.ts) and the
// proxy (worker-runner.ts). Every message from the worker carries the thread's
// cumulative CPU time and the metric/log operations the plugin made since
// the last message, so they cost no extra round trip.
import type { HookInput, HookName, HookOutput } from './runner.ts';

export interface WorkerInit {
  readonly name: string;
  /** The plugin's script (types already stripped), or a proxy-wasm module. */
  readonly code: { readonly kind: 'script'; readonly source: string } | { readonly kind: 'wasm'; readonly bytes: Uint8Array };
  readonly config: string;
  readonly rootId: string;
  readonly vmId: string;
  /** proxy-wasm: hand request and response bodies to the module. */
  readonly bodies: boolean;
}

export type Op =
  | { readonly op: 'def'; readonly kind: 'counter' | 'gauge' | 'histogram'; readonly name: string; readonly help: string; readonly buckets?: number[] }
  | { readonly op: 'm'; readonly name: string; readonly how: 'inc' | 'dec' | 'set' | 'observe'; readonly v: number }
  | { readonly op: 'log'; readonly level: 'debug' | 'info' | 'warn' | 'error'; readonly msg: string };

export interface HttpCallRequest {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly headers: string[];
  readonly body: Uint8Array | null;
  readonly timeoutMs: number;
}

interface Report {
  /** Cumulative CPU time of the worker thread, microseconds. */
  readonly cpu: number;
  readonly ops: Op[];
}

export type ToMain =
  | ({ readonly t: 'ready'; readonly hooks: HookName[] } & Report)
  | { readonly t: 'initFail'; readonly message: string }
  | ({ readonly t: 'ret'; readonly id: number; readonly out: HookOutput } & Report)
  | ({ readonly t: 'http'; readonly id: number; readonly cluster: string; readonly req: HttpCallRequest } & Report)
  | ({ readonly t: 'pong' } & Report)
  | ({ readonly t: 'ops' } & Report);

export type ToWorker =
  /** `stream`: the request the call belongs to (a proxy-wasm HTTP context). */
  | { readonly t: 'call'; readonly id: number; readonly stream: number; readonly input: HookInput }
  /** The request is over (proxy_on_done / proxy_on_delete). */
  | { readonly t: 'end'; readonly stream: number }
  | { readonly t: 'http'; readonly id: number; readonly res?: { status: number; headers: string[]; body: Uint8Array }; readonly error?: string }
  | { readonly t: 'ping' };
