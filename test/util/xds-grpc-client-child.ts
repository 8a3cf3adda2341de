// A proxyless gRPC client (grpc-js + grpc-js-xds) in its own process: the xDS
// client and its bootstrap are per process. Bootstrap comes from
// GRPC_XDS_BOOTSTRAP_CONFIG; the target from XDS_TARGET (e.g. "xds:///echo").
// Commands over IPC (the same call as the grpc-go and Python peers' stdin
// protocol, test/interop/):
//   {cmd:'call', n, deadlineMs, method?, metadata?} -> {counts: {<backend>: n}, errors: {<code>: n}}
//   {cmd:'exit'}
// Backends answer with their name as the raw message body.
import * as grpc from '@grpc/grpc-js';
import * as xds from '@grpc/grpc-js-xds';

xds.register();
const target = process.env.XDS_TARGET ?? 'xds:///echo';
const client = new grpc.Client(target, grpc.credentials.createInsecure());
const raw = (b: Buffer): Buffer => b;

function callOnce(method: string, metadata: Record<string, string>, deadlineMs: number): Promise<{ ok: true; backend: string } | { ok: false; code: string }> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise((resolve) => {
    client.makeUnaryRequest(method, raw, raw, Buffer.from('hi'), md, { deadline: Date.now() + deadlineMs }, (err, res) => {
      if (err) resolve({ ok: false, code: grpc.status[err.code] ?? String(err.code) });
      else resolve({ ok: true, backend: res?.toString() ?? '' });
    });
  });
}

process.on('message', async (msg: { cmd: string; n?: number; deadlineMs?: number; id?: number; method?: string; metadata?: Record<string, string> }) => {
  if (msg.cmd === 'exit') {
    client.close();
    process.exit(0);
  }
  if (msg.cmd === 'call') {
    const counts: Record<string, number> = {};
    const errors: Record<string, number> = {};
    const n = msg.n ?? 1;
    // A few calls in flight at a time, each with its own deadline.
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < n) {
        next++;
        const r = await callOnce(msg.method ?? '/echo.Echo/Call', msg.metadata ?? {}, msg.deadlineMs ?? 2000);
        if (r.ok) counts[r.backend] = (counts[r.backend] ?? 0) + 1;
        else errors[r.code] = (errors[r.code] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, n) }, worker));
    process.send?.({ id: msg.id, counts, errors });
  }
});
process.on('disconnect', () => process.exit(0));
process.send?.({ ready: true });
