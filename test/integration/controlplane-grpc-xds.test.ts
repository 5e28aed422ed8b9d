// Conformance witness: a real @grpc/grpc-js-xds client resolves xds:///echo.default.svc.cluster.local:7070
// through our control plane and reaches every endpoint of the sample gRPC service, round robin.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { register as registerXds } from '@grpc/grpc-js-xds';
import { startControlPlane, type ControlPlaneHandle } from '../../src/controlplane/control-plane';
import { echoService, startGrpcEchoServer, type EchoResponse, type GrpcEchoServer } from '../../src/sample/grpc-server';
import { silentLogger } from '../../src/telemetry/logger';

const TARGET = 'xds:///echo.default.svc.cluster.local:7070';

function pod(name: string, ip: string, port: number): string {
  return `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  namespace: default
  labels: { app: echo }
spec:
  serviceAccountName: echo
  containers:
    - name: echo
      ports:
        - name: grpc
          containerPort: ${port}
status:
  podIP: ${ip}
`;
}

const SERVICE = `apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: default
spec:
  selector: { app: echo }
  ports:
    - name: grpc
      port: 7070
      targetPort: grpc
      appProtocol: grpc
`;

let dir: string;
let cp: ControlPlaneHandle;
const servers: GrpcEchoServer[] = [];
type EchoCall = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: Error | null, res: EchoResponse) => void) => void;
let client: grpc.Client & { Echo: EchoCall };

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-cp-witness-'));
  // Pods listen on distinct loopback addresses and (to exercise targetPort by name) distinct ports.
  for (const [name, ip] of [
    ['echo-a', '127.0.0.2'],
    ['echo-b', '127.0.0.3'],
  ]) {
    servers.push(await startGrpcEchoServer({ host: ip, port: 0, pod: name }));
  }
  fs.writeFileSync(path.join(dir, 'service.yaml'), SERVICE);
  fs.writeFileSync(
    path.join(dir, 'pods.yaml'),
    [pod('echo-a', '127.0.0.2', servers[0].port), pod('echo-b', '127.0.0.3', servers[1].port)].join('---\n'),
  );
  cp = await startControlPlane({ config: dir, xdsAddress: '127.0.0.1:0', metricsPort: false, logger: silentLogger() });
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
    xds_servers: [{ server_uri: cp.address, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: 'witness-client', locality: {} },
  });
  // Registering makes grpc-js resolve xds: targets; the bootstrap above is read on first use.
  registerXds();
  const Echo = echoService();
  client = new Echo(TARGET, grpc.credentials.createInsecure()) as unknown as typeof client;
});

after(async () => {
  client?.close();
  await cp?.close();
  await Promise.all(servers.map((s) => s.close()));
  fs.rmSync(dir, { recursive: true, force: true });
});

function echo(message: string): Promise<EchoResponse> {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 10_000);
    client.Echo({ message }, new grpc.Metadata(), { deadline }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

async function podsSeen(calls: number): Promise<string[]> {
  const pods: string[] = [];
  for (let i = 0; i < calls; i++) pods.push((await echo(`hello ${i}`)).pod);
  return pods;
}

test('grpc-js-xds client reaches every endpoint, round robin', async () => {
  // Round robin picks among READY subchannels: the first calls may all land on whichever connected first.
  const until = Date.now() + 5000;
  let warm = new Set<string>();
  while (Date.now() < until && warm.size < 2) warm = new Set(await podsSeen(2));
  assert.deepEqual([...warm].sort(), ['echo-a', 'echo-b']);
  // Both connected: consecutive calls alternate between the two endpoints.
  const pods = await podsSeen(6);
  for (let i = 1; i < pods.length; i++) assert.notEqual(pods[i], pods[i - 1], `calls ${i - 1} and ${i} hit the same pod: ${pods.join(',')}`);
});

test('grpc-js-xds client follows a scale-up written to the watched directory', async () => {
  const extra = await startGrpcEchoServer({ host: '127.0.0.4', port: 0, pod: 'echo-c' });
  servers.push(extra);
  fs.writeFileSync(path.join(dir, 'pod-c.yaml'), pod('echo-c', '127.0.0.4', extra.port));
  const until = Date.now() + 5000;
  let seen = new Set<string>();
  while (Date.now() < until && seen.size < 3) seen = new Set(await podsSeen(6));
  assert.deepEqual([...seen].sort(), ['echo-a', 'echo-b', 'echo-c']);
});
