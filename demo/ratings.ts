// ratings (gRPC, @grpc/grpc-js): stars for a product. Called by reviews v2
// and v3 through their sidecars' local upstream port.
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { appPort } from './mesh-http.ts';

export const RATINGS_PROTO = path.join(import.meta.dirname, 'ratings.proto');

export function ratingsClientCtor(): grpc.ServiceClientConstructor {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(RATINGS_PROTO, { keepCase: true, defaults: true })) as unknown as {
    bookinfo: { Ratings: grpc.ServiceClientConstructor };
  };
  return pkg.bookinfo.Ratings;
}

if (import.meta.main) {
  const port = appPort();
  const server = new grpc.Server();
  server.addService(ratingsClientCtor().service, {
    GetRating(call: grpc.ServerUnaryCall<{ product_id: number }, unknown>, cb: grpc.sendUnaryData<unknown>) {
      const id = call.request.product_id;
      cb(null, { product_id: id, stars: 1 + ((id * 7 + Math.floor(Date.now() / 60_000)) % 5), served_by: `ratings (grpc-js, ${process.env.TRELLIS_WORKLOAD ?? 'local'})` });
    },
  });
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) {
      console.error(`ratings: ${err.message}`);
      process.exit(1);
    }
    console.log(`ratings listening on 127.0.0.1:${port} (gRPC)`);
  });
  const stop = (): void => {
    server.tryShutdown(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
