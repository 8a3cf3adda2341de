// The app's probes, run by the sidecar for the kubelet. The Kubernetes
// injector (control-plane/kubernetes/inject.ts) points each httpGet/tcpSocket
// probe at the admin port, /app-health/<container>/<kind>, and hands the
// originals over in TRELLIS_APP_PROBERS: the kubelet's own connection to the
// app's port would be captured by the inbound redirect (and refused under
// STRICT mTLS). Here each such GET runs the original check against the app
// on 127.0.0.1 (as the proxy's uid: not captured) and answers 200 or 503.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

export interface AppProber {
  readonly httpGet?: { readonly path: string; readonly port: number; readonly scheme: string; readonly httpHeaders?: readonly { name: string; value: string }[] };
  readonly tcpSocket?: { readonly port: number };
  readonly timeoutSeconds: number;
}

/** Parses TRELLIS_APP_PROBERS; throws naming the path at fault. */
export function parseAppProbers(text: string | undefined): Map<string, AppProber> {
  const out = new Map<string, AppProber>();
  if (!text) return out;
  const v = JSON.parse(text) as Record<string, AppProber>;
  for (const [path, p] of Object.entries(v)) {
    if (!path.startsWith('/app-health/')) throw new Error(`TRELLIS_APP_PROBERS: ${path}: paths start with /app-health/`);
    const port = p.httpGet?.port ?? p.tcpSocket?.port;
    if (!Number.isInteger(port) || port! < 1 || port! > 65535) throw new Error(`TRELLIS_APP_PROBERS: ${path}: a port 1-65535 is required`);
    out.set(path, p);
  }
  return out;
}

function check(p: AppProber): Promise<{ ok: boolean; detail: string }> {
  const timeoutMs = Math.max(1, p.timeoutSeconds) * 1000;
  if (p.tcpSocket) {
    return new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: p.tcpSocket!.port, timeout: timeoutMs });
      s.once('connect', () => { s.destroy(); resolve({ ok: true, detail: 'connected' }); });
      s.once('timeout', () => { s.destroy(); resolve({ ok: false, detail: 'timeout' }); });
      s.once('error', (err) => resolve({ ok: false, detail: err.message }));
    });
  }
  const g = p.httpGet!;
  const headers = Object.fromEntries((g.httpHeaders ?? []).map((h) => [h.name, h.value]));
  const get = g.scheme === 'HTTPS' ? https.get : http.get;
  return new Promise((resolve) => {
    // The kubelet does not verify the app's certificate either.
    const req = get({ host: '127.0.0.1', port: g.port, path: g.path, headers, timeout: timeoutMs, rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      const code = res.statusCode ?? 0;
      // The kubelet's rule: 200-399 is success.
      resolve({ ok: code >= 200 && code < 400, detail: `HTTP ${code}` });
    });
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', (err) => resolve({ ok: false, detail: err.message }));
  });
}

/** An admin route: true when it answered (an /app-health/ path). */
export function appHealthHandler(probers: Map<string, AppProber>): (req: http.IncomingMessage, res: http.ServerResponse) => boolean {
  return (req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    if (!path.startsWith('/app-health/') || req.method !== 'GET') return false;
    const p = probers.get(path);
    if (!p) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`no app probe at ${path}\n`);
      return true;
    }
    void check(p).then((r) => {
      res.writeHead(r.ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`${r.detail}\n`);
    });
    return true;
  };
}
