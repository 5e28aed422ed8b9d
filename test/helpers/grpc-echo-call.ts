// Run inside a pod: unary calls to the sample Echo service, one per metadata set, and one JSON line per call
// with what came back: status code, the serving pod and version, and the request metadata the server saw.
//
//   node grpc-echo-call.js 198.18.130.28:7070 '[{"x-test-case": "set"}, ...]'

import * as grpc from '@grpc/grpc-js';
import { echoService, type EchoResponse } from '../../src/sample/grpc-server';

export interface EchoCallAnswer {
  code: number;
  details: string;
  pod?: string;
  version?: string;
  metadata?: Record<string, string>;
}

type Echo = grpc.Client & {
  Echo(req: { message: string }, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: EchoResponse) => void): grpc.ClientUnaryCall;
};

function call(client: Echo, metadata: Record<string, string>): Promise<EchoCallAnswer> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise((resolve) => {
    client.Echo({ message: 'hi' }, md, { deadline: Date.now() + 10_000 }, (err, res) => {
      if (err) return resolve({ code: err.code, details: err.details });
      resolve({ code: 0, details: '', pod: res!.pod, version: res!.version, metadata: res!.metadata });
    });
  });
}

async function main(): Promise<void> {
  const [target, list] = process.argv.slice(2);
  const Client = echoService();
  const client = new Client(target!, grpc.credentials.createInsecure()) as unknown as Echo;
  for (const md of JSON.parse(list ?? '[{}]') as Record<string, string>[]) process.stdout.write(`${JSON.stringify(await call(client, md))}\n`);
  client.close();
}

// Imported for its types by the tests that run it.
if (require.main === module) void main();
