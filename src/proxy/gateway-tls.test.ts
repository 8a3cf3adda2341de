import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { chainForSni, createGatewayTls, gatewayCertFiles } from './gateway-tls.ts';
import type { FilterChainSpec } from './config/types.ts';
import { testCertificate } from '../../test/gateway/kit.ts';

const DOWNSTREAM = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const chain = (name: string, serverNames?: string[], files = true): FilterChainSpec => ({
  name,
  match: { transportProtocol: 'tls', ...(serverNames ? { serverNames } : {}) },
  protocol: 'auto',
  extensions: {
    transportSocket: {
      name: 'tls',
      typedConfig: {
        '@type': DOWNSTREAM,
        commonTlsContext: files ? { tlsCertificates: [{ certificateChain: { filename: `/c/${name}.crt` }, privateKey: { filename: `/c/${name}.key` } }] } : {},
      },
    },
  },
});

test('SNI picks the exact name, then the longest wildcard, then a chain without names (catch-all), else none', () => {
  const a = chain('a', ['a.example.com']);
  const wild = chain('wild', ['*.example.com']);
  const deeper = chain('deeper', ['*.eu.example.com']);
  const any = chain('any');
  const all = [a, wild, deeper, any];
  assert.equal(chainForSni(all, 'a.example.com')?.name, 'a');
  assert.equal(chainForSni(all, 'A.Example.com')?.name, 'a');
  assert.equal(chainForSni(all, 'b.example.com')?.name, 'wild');
  assert.equal(chainForSni(all, 'x.eu.example.com')?.name, 'deeper');
  assert.equal(chainForSni(all, 'other.org')?.name, 'any');
  assert.equal(chainForSni(all, undefined)?.name, 'any');
  // Without a catch-all an unknown name (or none) gets no certificate at all.
  assert.equal(chainForSni([a, wild], 'other.org'), undefined);
  assert.equal(chainForSni([a, wild], undefined), undefined);
});

test('only chains naming certificate files are gateway chains (mesh mTLS chains are not)', () => {
  assert.deepEqual(gatewayCertFiles(chain('a', ['a.example.com'])), [{ cert: '/c/a.crt', key: '/c/a.key' }]);
  assert.deepEqual(gatewayCertFiles(chain('mesh', undefined, false)), []);
  assert.deepEqual(gatewayCertFiles({ name: 'plain', match: {}, protocol: 'auto' }), []);
});

test('a catch-all chain (listener without hostname) serves unknown SNI and clients without SNI; without one they are refused', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'trellis-gw-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files = (host: string) => {
    const c = testCertificate(dir, host);
    return { certificateChain: { filename: c.certFile }, privateKey: { filename: c.keyFile } };
  };
  const tlsChain = (name: string, host: string, serverNames?: string[]): FilterChainSpec => ({
    name, match: { transportProtocol: 'tls', ...(serverNames ? { serverNames } : {}) }, protocol: 'auto',
    extensions: { transportSocket: { name: 'tls', typedConfig: { '@type': DOWNSTREAM, commonTlsContext: { tlsCertificates: [files(host)] } } } },
  });
  const www = tlsChain('www', 'www.example.com', ['www.example.com']);
  const any = tlsChain('any', 'any.example.com');
  let chains = [www, any];
  const term = createGatewayTls({ chains: () => chains, http1: (s) => s.end('HTTP/1.1 204 No Content\r\n\r\n'), http2: (s) => s.destroy() });
  const server = net.createServer((socket) => {
    const downstream = { remoteAddress: '', remotePort: 0, localAddress: '', localPort: 0 };
    term({ socket, initial: Buffer.alloc(0), protocol: 'tls', chain: www, downstream, track: () => () => {} },
      { listener: 'gateway|443', direction: 'gateway', downstream, dispatch: () => {}, track: () => () => {} });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const served = (servername?: string) => new Promise<string>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ...(servername ? { servername } : {}), rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      resolve(String(s.getPeerCertificate().subject?.CN));
      s.destroy();
    });
    s.on('error', (e) => resolve(`error: ${e.message}`));
  });
  assert.equal(await served('www.example.com'), 'www.example.com');
  assert.equal(await served('other.example.com'), 'any.example.com');
  assert.equal(await served(undefined), 'any.example.com');
  chains = [www];
  assert.match(await served('other.example.com'), /^error/);
  assert.match(await served(undefined), /^error/);
  assert.equal(await served('www.example.com'), 'www.example.com');
});
