// A client that uses the declared upstream local ports: one gRPC unary call
// to TRELLIS_UPSTREAM_GREETER_50051 and one TCP echo through
// TRELLIS_UPSTREAM_ECHO_7000; writes what it got to OUT.
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { greeterDefinition } from './greeter.ts';

const grpcAddr = process.env.TRELLIS_UPSTREAM_GREETER_50051!;
const tcpAddr = process.env.TRELLIS_UPSTREAM_ECHO_7000!;

const Client = grpc.makeGenericClientConstructor(greeterDefinition, 'Greeter');
const client = new Client(grpcAddr, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
  sayHello(req: Buffer, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
};
const grpcReply = await new Promise<string>((resolve) => {
  client.sayHello(Buffer.from('mesh'), { deadline: Date.now() + 5000 }, (err, res) => resolve(err ? `error: ${err.message}` : String(res)));
});
client.close();

const [host, port] = [tcpAddr.split(':')[0]!, Number(tcpAddr.split(':')[1])];
const tcpReply = await new Promise<string>((resolve) => {
  const s = net.connect(port, host, () => s.end('ping over tcp'));
  let got = '';
  s.setEncoding('utf8').on('data', (d: string) => (got += d));
  s.on('close', () => resolve(got));
  s.on('error', (e) => resolve(`error: ${e.message}`));
  s.setTimeout(5000, () => s.destroy());
});
writeFileSync(process.env.OUT!, JSON.stringify({ grpcReply, tcpReply, grpcAddr, tcpAddr }));
