// A proxyless gRPC client (grpc-js + grpc-js-xds) in its own process: the xDS
// client and its bootstrap are per process. Bootstrap comes from
// GRPC_XDS_BOOTSTRAP_CONFIG; the target from XDS_TARGET (e.g. "xds:///echo").
// Commands over IPC:
//   {cmd:'call', n, deadlineMs} -> {counts: {<backend>: n}, errors: {<code>: n}}
//   {cmd:'exit'}
// Backends answer /echo.Echo/Call with their name as the raw message body.
import * as grpc from '@grpc/grpc-js';
import * as xds from '@grpc/grpc-js-xds';

xds.register();
const target = process.env.XDS_TARGET ?? 'xds:///echo';
const Echo = grpc.makeGenericClientConstructor(
  {
    Call: {
      path: '/echo.Echo/Call',
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    },
  },
  'echo',
);
const client = new Echo(target, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
  Call(req: Buffer, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
};

function callOnce(deadlineMs: number): Promise<{ ok: true; backend: string } | { ok: false; code: string }> {
  return new Promise((resolve) => {
    client.Call(Buffer.from('hi'), { deadline: Date.now() + deadlineMs }, (err, res) => {
      if (err) resolve({ ok: false, code: grpc.status[err.code] ?? String(err.code) });
      else resolve({ ok: true, backend: res?.toString() ?? '' });
    });
  });
}

process.on('message', async (msg: { cmd: string; n?: number; deadlineMs?: number; id?: number }) => {
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
        const r = await callOnce(msg.deadlineMs ?? 2000);
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
