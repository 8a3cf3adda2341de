// A gRPC service without .proto files: raw bytes in, raw bytes out.
import type * as grpc from '@grpc/grpc-js';

const id = (b: Buffer): Buffer => b;
export const greeterDefinition: grpc.ServiceDefinition = {
  sayHello: {
    path: '/greet.Greeter/SayHello',
    requestStream: false,
    responseStream: false,
    requestSerialize: id,
    requestDeserialize: id,
    responseSerialize: id,
    responseDeserialize: id,
  },
};
