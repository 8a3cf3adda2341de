// A gRPC client that dials a service by name (argv[2], e.g. greeter:50051)
// with no mesh knowledge: grpc-js honours http_proxy (set by `trellis run`)
// and sends CONNECT greeter:50051 to the sidecar. Writes the reply to OUT.
import { writeFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { greeterDefinition } from './greeter.ts';

const target = process.argv[2] ?? 'greeter:50051';
const Client = grpc.makeGenericClientConstructor(greeterDefinition, 'Greeter');
const client = new Client(target, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
  sayHello(req: Buffer, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
};
const replies: string[] = [];
for (let i = 0; i < 3; i++) {
  replies.push(await new Promise<string>((resolve) => {
    client.sayHello(Buffer.from(`call ${i}`), { deadline: Date.now() + 5000 }, (err, res) => resolve(err ? `error: ${err.message}` : String(res)));
  }));
}
client.close();
writeFileSync(process.env.OUT!, JSON.stringify({ target, replies, proxy: process.env.http_proxy }));
