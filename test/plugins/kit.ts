// Plugin test kit: envoy.filters.http.wasm filters carrying a TypeScript
// plugin (or a proxy-wasm module), an app that echoes what it received, and
// a proxy with plugins in front of it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';

export const WASM_FILTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm';

export interface PluginFilterOptions {
  readonly runtime?: 'typescript' | 'wasm';
  readonly failOpen?: boolean;
  readonly configuration?: string;
  readonly hookTimeout?: string;
  readonly maxBodyBytes?: number;
  /** proxy-wasm: hand bodies to the module. */
  readonly bodies?: boolean;
}

/** An HCM http filter running `code` (TypeScript source, or wasm bytes). */
export function pluginFilter(name: string, code: string | Buffer, o: PluginFilterOptions = {}): object {
  const runtime = o.runtime ?? 'typescript';
  return {
    name: 'envoy.filters.http.wasm',
    typedConfig: {
      '@type': WASM_FILTER_TYPE,
      config: {
        name,
        rootId: name,
        failurePolicy: o.failOpen ? 'FAIL_OPEN' : 'FAIL_CLOSED',
        ...(o.configuration !== undefined ? { configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: o.configuration } } : {}),
        vmConfig: {
          runtime: runtime === 'typescript' ? 'trellis.plugin.runtime.typescript' : 'envoy.wasm.runtime.v8',
          code: { local: typeof code === 'string' ? { inlineString: code } : { inlineBytes: code.toString('base64') } },
          configuration: {
            '@type': 'type.googleapis.com/google.protobuf.Struct',
            value: { hookTimeout: o.hookTimeout ?? '2s', ...(o.maxBodyBytes !== undefined ? { maxBodyBytes: o.maxBodyBytes } : {}), ...(o.bodies ? { bodies: true } : {}) },
          },
        },
      },
    },
  };
}

/** An app answering 200 with JSON {method, path, headers, body} of what it received. */
export async function startEchoApp(t: TestContext, o: { delayMs?: number } = {}): Promise<number> {
  const s = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify({ method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
      const send = () => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-app': 'echo' });
        res.end(body);
      };
      if (o.delayMs) setTimeout(send, o.delayMs);
      else send();
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => {
    s.closeAllConnections();
    s.close();
  });
  return (s.address() as AddressInfo).port;
}

/** A minimal proxy-wasm module, assembled here: request headers continue,
 * except with more than 10 header pairs, when `onMany` runs: an endless
 * loop or a trap (`unreachable`). For containment tests without an SDK. */
export function tinyProxyWasm(onMany: 'loop' | 'trap'): Buffer {
  const str = (s: string) => [s.length, ...Buffer.from(s)];
  const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
  const leb = (n: number): number[] => {
    const out: number[] = [];
    do {
      let b = n & 0x7f;
      n >>>= 7;
      if (n !== 0) b |= 0x80;
      out.push(b);
    } while (n !== 0);
    return out;
  };
  const I32 = 0x7f;
  const types = [
    0x60, 0, 0, // 0: () -> ()
    0x60, 1, I32, 1, I32, // 1: (i32) -> i32
    0x60, 3, I32, I32, I32, 1, I32, // 2: (i32, i32, i32) -> i32
    0x60, 2, I32, I32, 0, // 3: (i32, i32) -> ()
  ];
  const many = onMany === 'loop' ? [0x03, 0x40, 0x0c, 0x00, 0x0b] : [0x00];
  const bodies = [
    [0x00, 0x0b], // proxy_abi_version_0_2_1
    [0x00, 0x41, 0x80, 0x08, 0x0b], // malloc: 1024 (scratch; the host never writes much here)
    [0x00, 0x20, 0x01, 0x41, 0x0a, 0x4b, 0x04, 0x40, ...many, 0x0b, 0x41, 0x00, 0x0b], // proxy_on_request_headers
    [0x00, 0x0b], // proxy_on_context_create
  ];
  const exports = [
    ['memory', 0x02, 0], ['proxy_abi_version_0_2_1', 0x00, 0], ['malloc', 0x00, 1], ['proxy_on_request_headers', 0x00, 2], ['proxy_on_context_create', 0x00, 3],
  ] as const;
  return Buffer.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [4, ...types]),
    ...section(3, [4, 0, 1, 2, 3]),
    ...section(5, [1, 0x00, 1]),
    ...section(7, [exports.length, ...exports.flatMap(([n, kind, i]) => [...str(n), kind, i])]),
    ...section(10, [bodies.length, ...bodies.flatMap((b) => [...leb(b.length), ...b])]),
  ]);
}
