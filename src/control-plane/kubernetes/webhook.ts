// The sidecar injector: a mutating admission webhook the API server calls
// for every Pod CREATE (POST /inject, AdmissionReview admission.k8s.io/v1),
// served over TLS with a certificate from the mesh CA (SANs: the hosts the
// API server dials, e.g. trellis.trellis-system.svc or 127.0.0.1). At start
// the mesh's trust bundle is patched into every webhook of the
// MutatingWebhookConfiguration (`caBundle`), so the API server trusts it.
// The patch itself is inject.ts's; whether a Pod gets one needs its
// namespace's labels (RBAC: get namespaces; patch
// mutatingwebhookconfigurations). Errors answer HTTP 500: the
// configuration's failurePolicy decides whether the Pod is then created.
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeClient } from './client.ts';
import { KubeApiError } from './client.ts';
import { injectionPatch, wantsInjection, type InjectOptions, type PodMeta, type PodSpec } from './inject.ts';
import type { CertificateAuthority } from '../ca/ca.ts';
import { isIP } from 'node:net';

export const DEFAULT_WEBHOOK_CONFIG = 'trellis-sidecar-injector';
const MAX_BODY = 8 * 1024 * 1024;

export interface InjectionWebhookOptions {
  readonly ca: CertificateAuthority;
  readonly client: Pick<KubeClient, 'request'>;
  readonly host: string;
  readonly port: number;
  /** DNS names / IPs the API server dials (the serving certificate's SANs). */
  readonly hosts: readonly string[];
  readonly inject: InjectOptions;
  /** The MutatingWebhookConfiguration whose caBundle is patched at start. */
  readonly webhookConfig?: string;
  readonly log?: (msg: string) => void;
}

export interface InjectionWebhook {
  readonly port: number;
  close(): Promise<void>;
}

interface AdmissionRequest {
  uid?: string;
  kind?: { kind?: string };
  operation?: string;
  namespace?: string;
  object?: { metadata?: PodMeta; spec?: PodSpec };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error(`body larger than ${MAX_BODY} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

/** The AdmissionReview response for one request (pure apart from the namespace lookup). */
export async function review(request: AdmissionRequest, namespaceLabels: (ns: string) => Promise<Record<string, string>>, opts: InjectOptions): Promise<object> {
  const uid = request.uid;
  if (typeof uid !== 'string' || uid === '') throw new Error('request.uid: required');
  const allow = (extra: object = {}) => ({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true, ...extra } });
  const pod = request.object;
  if (request.kind?.kind !== 'Pod' || request.operation !== 'CREATE' || !pod?.spec || !Array.isArray(pod.spec.containers)) return allow();
  const meta = pod.metadata ?? {};
  const ns = request.namespace ?? meta.namespace ?? 'default';
  if (!wantsInjection(meta, await namespaceLabels(ns))) return allow();
  const patch = injectionPatch(pod.spec, meta, opts);
  if (patch.length === 0) return allow();
  return allow({ patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') });
}

/** Put `caBundle` (PEM) into every webhook of the named configuration; false when it does not exist. */
export async function patchCaBundle(client: Pick<KubeClient, 'request'>, name: string, caBundlePem: string): Promise<boolean> {
  const path = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${encodeURIComponent(name)}`;
  let cfg: { webhooks?: unknown[] };
  try {
    cfg = await client.request<{ webhooks?: unknown[] }>('GET', path);
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 404) return false;
    throw err;
  }
  const b64 = Buffer.from(caBundlePem).toString('base64');
  const ops = (cfg.webhooks ?? []).map((_, i) => ({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: b64 }));
  if (ops.length > 0) await client.request('PATCH', path, ops, { contentType: 'application/json-patch+json' });
  return true;
}

export async function startInjectionWebhook(opts: InjectionWebhookOptions): Promise<InjectionWebhook> {
  const log = opts.log ?? (() => {});
  const serving = await opts.ca.issueServingCertificate({ dnsNames: opts.hosts.filter((h) => isIP(h) === 0), ipAddresses: opts.hosts.filter((h) => isIP(h) !== 0) });
  const namespaceLabels = async (ns: string): Promise<Record<string, string>> => {
    const n = await opts.client.request<{ metadata?: { labels?: Record<string, string> } }>('GET', `/api/v1/namespaces/${encodeURIComponent(ns)}`);
    return n?.metadata?.labels ?? {};
  };
  const server: Server = createServer({ cert: serving.certificateChain, key: serving.privateKeyPem }, (req: IncomingMessage, res: ServerResponse) => {
    const send = (status: number, body: object): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== '/inject') return send(404, { error: 'POST /inject only' });
    void (async () => {
      try {
        const parsed = JSON.parse(await readBody(req)) as { request?: AdmissionRequest };
        if (!parsed || typeof parsed !== 'object' || !parsed.request) throw new Error('request: required (an admission.k8s.io/v1 AdmissionReview)');
        send(200, await review(parsed.request, namespaceLabels, opts.inject));
      } catch (err) {
        log(`injection webhook: ${(err as Error).message}`);
        send(500, { error: (err as Error).message });
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const name = opts.webhookConfig ?? DEFAULT_WEBHOOK_CONFIG;
  try {
    const found = await patchCaBundle(opts.client, name, opts.ca.trustBundle().pem);
    log(found ? `injection webhook: https://${opts.host}:${port}/inject, caBundle patched into ${name}` : `injection webhook: https://${opts.host}:${port}/inject; no MutatingWebhookConfiguration ${name} yet (trellis install creates it)`);
  } catch (err) {
    await new Promise<void>((r) => server.close(() => r()));
    throw new Error(`injection webhook: patching the caBundle of ${name}: ${(err as Error).message}`);
  }
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
