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
            value: { hookTimeout: o.hookTimeout ?? '2s', ...(o.maxBodyBytes !== undefined ? { maxBodyBytes: o.maxBodyBytes } : {}) },
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
