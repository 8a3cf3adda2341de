// Authz / JWT test kit: signing keys and tokens (node:crypto), a loopback
// JWKS server (HTTP or HTTPS with a self-signed test certificate), and an
// in-process proxy whose inbound listener carries jwt_authn / RBAC filters.
import http from 'node:http';
import https from 'node:https';
import { webcrypto, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import * as x509 from '../../src/lib/x509.ts';
import { buildProxyConfig } from '../../src/proxy/config/envoy.ts';
import { startProxy, type Proxy, type StartProxyOptions } from '../../src/proxy/proxy.ts';

export const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const RBAC_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
export const JWT_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';
export const addr = (port: number) => ({ socketAddress: { address: '127.0.0.1', portValue: port } });

export interface Signer {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: KeyObject;
  jwk: Record<string, unknown>;
}

export function signer(alg: 'RS256' | 'ES256', kid: string): Signer {
  const { privateKey, publicKey } = alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kid, alg, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } };
}

export function jwks(...signers: Signer[]): string {
  return JSON.stringify({ keys: signers.map((s) => s.jwk) });
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

export function token(s: Signer, claims: Record<string, unknown>, o: { kid?: string | null } = {}): string {
  const header = { alg: s.alg, typ: 'JWT', ...(o.kid === null ? {} : { kid: o.kid ?? s.kid }) };
  const input = `${b64(header)}.${b64(claims)}`;
  const sig = s.alg === 'RS256' ? sign('sha256', Buffer.from(input), s.privateKey) : sign('sha256', Buffer.from(input), { key: s.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

export const nowS = () => Math.floor(Date.now() / 1000);

/** A self-signed certificate for 127.0.0.1 / localhost. */
export async function testCert(): Promise<{ cert: string; key: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=jwks.test',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }, { type: 'dns', value: 'localhost' }])],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  return { cert: cert.toString('pem'), key: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n` };
}

export interface JwksServer {
  url: string;
  /** Replace the served document. */
  body: string;
  status: number;
  hits: number;
}

export async function startJwksServer(t: TestContext, body: string, tls?: { cert: string; key: string }): Promise<JwksServer> {
  const state: JwksServer = { url: '', body, status: 200, hits: 0 };
  const handler = (_req: http.IncomingMessage, res: http.ServerResponse) => {
    state.hits++;
    res.writeHead(state.status, { 'content-type': 'application/json' });
    res.end(state.status === 200 ? state.body : 'nope');
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  state.url = `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  return state;
}

/** An app answering 200 with what it saw (method, path, authorization). */
export async function startApp(t: TestContext): Promise<number> {
  const s = http.createServer((req, res) => {
    req.resume();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ path: req.url, authorization: req.headers.authorization ?? null, peer: req.headers['x-trellis-peer-identity'] ?? null }));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => {
    s.closeAllConnections();
    s.close();
  });
  return (s.address() as AddressInfo).port;
}

export function hcmFilter(name: string, cluster: string, httpFilters: object[], extra: Record<string, unknown> = {}): object {
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typedConfig: {
      '@type': HCM_TYPE,
      statPrefix: name,
      codecType: 'AUTO',
      routeConfig: { name, virtualHosts: [{ name, domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster, timeout: '0s' } }] }] },
      httpFilters: [...httpFilters, { name: 'envoy.filters.http.router' }],
      ...extra,
    },
  };
}

export const rbacFilter = (action: 'ALLOW' | 'DENY', policies: Record<string, object>) => ({ name: 'envoy.filters.http.rbac', typedConfig: { '@type': RBAC_TYPE, rules: { action, policies } } });
export const jwtFilter = (cfg: object) => ({ name: 'envoy.filters.http.jwt_authn', typedConfig: { '@type': JWT_TYPE, ...cfg } });

export function cluster(name: string, port: number, o: { h2?: boolean } = {}): object {
  return {
    name,
    type: 'STATIC',
    connectTimeout: '2s',
    lbPolicy: 'ROUND_ROBIN',
    loadAssignment: { clusterName: name, endpoints: [{ lbEndpoints: [{ endpoint: { address: addr(port) } }] }] },
    ...(o.h2 ? { http2ProtocolOptions: {} } : {}),
  };
}

/** A proxy with one inbound listener in front of the app, with these HTTP filters. */
export async function startInboundProxy(t: TestContext, appPort: number, httpFilters: object[], o: Partial<StartProxyOptions> & { h2App?: boolean; hcm?: Record<string, unknown> } = {}): Promise<{ proxy: Proxy; port: number }> {
  const built = buildProxyConfig({
    version: 'authz-1',
    listeners: [{ name: 'inbound', address: addr(0), trafficDirection: 'INBOUND', filterChains: [{ name: 'in', filters: [hcmFilter('inbound', 'app', httpFilters, o.hcm)] }] }],
    clusters: [cluster('app', appPort, { h2: o.h2App ?? false })],
  }, { references: 'error' });
  assert.ok(built.ok, JSON.stringify(built));
  const { h2App: _h2, hcm: _hcm, ...opts } = o;
  const r = await startProxy({ config: built.config, node: { id: 'authz', cluster: 'authz', locality: { region: '', zone: '', subZone: '' }, metadata: {} }, admin: false, detectTimeoutMs: 100, ...opts });
  assert.ok(r.ok, JSON.stringify(r));
  t.after(() => r.proxy.stop({ drainMs: 0 }));
  return { proxy: r.proxy, port: r.proxy.ports.get('inbound')! };
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function request(port: number, o: { method?: string; path?: string; headers?: Record<string, string>; host?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path ?? '/', headers: { host: o.host ?? 'app.shop', ...o.headers }, agent: false, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** The value of one Prometheus series in the proxy's registry, 0 when absent. */
export function metric(proxy: Proxy, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of proxy.stats.registry.expose().split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (want.every((w) => line.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}
