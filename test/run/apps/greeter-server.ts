// The greeter as a standalone app: answers "hello <request>" on 127.0.0.1:PORT.
import * as grpc from '@grpc/grpc-js';
import { greeterDefinition } from './greeter.ts';

const port = Number(process.argv[2]);
const server = new grpc.Server();
server.addService(greeterDefinition, {
  sayHello: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(`hello ${String(call.request)}`)),
});
server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(err.message);
    process.exit(1);
  }
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
