// Sample gRPC echo server (protos/nodemesh/sample/echo.proto): answers with its pod name, for load-balancing checks.

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protosDir } from '../util/protos-dir';

export interface EchoRequest {
  message: string;
}

export interface EchoResponse {
  message: string;
  pod: string;
  address: string;
}

export const ECHO_SERVICE = 'nodemesh.sample.Echo';

let cached: grpc.ServiceClientConstructor | undefined;

/** The Echo service constructor (client) whose `.service` is the server-side definition. */
export function echoService(): grpc.ServiceClientConstructor {
  if (cached) return cached;
  const def = protoLoader.loadSync('nodemesh/sample/echo.proto', { includeDirs: [protosDir('nodemesh/sample/echo.proto')], keepCase: true, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { nodemesh: { sample: { Echo: grpc.ServiceClientConstructor } } };
  cached = pkg.nodemesh.sample.Echo;
  return cached;
}

export interface GrpcEchoServer {
  address: string;
  port: number;
  close(): Promise<void>;
}

export async function startGrpcEchoServer(opts: { host?: string; port: number; pod?: string }): Promise<GrpcEchoServer> {
  const host = opts.host ?? '0.0.0.0';
  const pod = opts.pod ?? process.env.POD_NAME ?? 'unknown';
  const server = new grpc.Server();
  const bindHost = host.includes(':') ? `[${host}]` : host;
  server.addService(echoService().service, {
    Echo: (call: grpc.ServerUnaryCall<EchoRequest, EchoResponse>, cb: grpc.sendUnaryData<EchoResponse>) => {
      cb(null, { message: call.request.message, pod, address: `${bindHost}:${port}` });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${bindHost}:${opts.port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    address: `${bindHost}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 500).unref();
      }),
  };
}
