// Proxyless gRPC and GRPCRoute: a real @grpc/grpc-js-xds client accepts the RouteConfiguration the control plane
// serves for a routed Service (method + header match, weights with a 0) and routes by it; a route that is not
// safe for it (an unusable backend) gives it the Service's default route instead of a table it would reject.

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
import { waitFor } from '../helpers/wait';

const TARGET = 'xds:///echo.default.svc.cluster.local:7070';

function pod(name: string, variant: string, ip: string, port: number): string {
  return `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: default, labels: { app: echo, variant: ${variant} } }
spec: { serviceAccountName: echo, containers: [{ name: echo, ports: [{ name: grpc, containerPort: ${port} }] }] }
status: { podIP: ${ip} }
`;
}

const service = (name: string, selector: string) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec: { selector: { ${selector} }, ports: [{ name: grpc, port: 7070, targetPort: grpc, appProtocol: grpc }] }
`;

const route = (extraRule = '') => `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: variants, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 7070 }]
  rules:
    - matches: [{ method: { service: nodemesh.sample.Echo, method: Echo }, headers: [{ name: x-variant, value: b }] }]
      backendRefs: [{ name: echo-b, port: 7070 }]
    - backendRefs: [{ name: echo-a, port: 7070, weight: 1 }, { name: echo-b, port: 7070, weight: 0 }]
${extraRule}`;

let dir: string;
let cp: ControlPlaneHandle;
const servers: GrpcEchoServer[] = [];
type EchoCall = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: Error | null, res: EchoResponse) => void) => void;
let client: grpc.Client & { Echo: EchoCall };

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-grpc-routes-'));
  servers.push(await startGrpcEchoServer({ host: '127.0.0.5', port: 0, pod: 'echo-a' }), await startGrpcEchoServer({ host: '127.0.0.6', port: 0, pod: 'echo-b' }));
  fs.writeFileSync(path.join(dir, 'services.yaml'), [service('echo', 'app: echo'), service('echo-a', 'variant: a'), service('echo-b', 'variant: b')].join('---\n'));
  fs.writeFileSync(path.join(dir, 'pods.yaml'), [pod('echo-a', 'a', '127.0.0.5', servers[0]!.port), pod('echo-b', 'b', '127.0.0.6', servers[1]!.port)].join('---\n'));
  fs.writeFileSync(path.join(dir, 'route.yaml'), route());
  cp = await startControlPlane({ config: dir, xdsAddress: '127.0.0.1:0', metricsPort: false, logger: silentLogger(), watchDebounceMs: 20 });
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
    xds_servers: [{ server_uri: cp.address, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: 'route-witness', locality: {} },
  });
  registerXds();
  client = new (echoService())(TARGET, grpc.credentials.createInsecure()) as unknown as typeof client;
});

after(async () => {
  client?.close();
  await cp?.close();
  await Promise.all(servers.map((s) => s.close()));
  fs.rmSync(dir, { recursive: true, force: true });
});

function echo(variant?: string): Promise<string> {
  const md = new grpc.Metadata();
  if (variant) md.set('x-variant', variant);
  return new Promise((resolve, reject) => {
    client.Echo({ message: 'hi' }, md, { deadline: new Date(Date.now() + 10_000) }, (err, res) => (err ? reject(err) : resolve(res.pod)));
  });
}

test('grpc-js-xds routes by the GRPCRoute: header match to echo-b, weight 1:0 to echo-a', async () => {
  const plain = new Set<string>();
  const tagged = new Set<string>();
  for (let i = 0; i < 8; i++) {
    plain.add(await echo());
    tagged.add(await echo('b'));
  }
  assert.deepEqual([...plain], ['echo-a']);
  assert.deepEqual([...tagged], ['echo-b']);
});

test('a route it could not honour as written gives the proxyless client the default route, never a table it rejects', async () => {
  fs.writeFileSync(path.join(dir, 'route.yaml'), route('    - matches: [{ method: { method: Other } }]\n      backendRefs: [{ name: missing, port: 7070 }]\n'));
  // The Service's own cluster (both pods) replaces the split: calls reach echo-b without the header.
  await waitFor(
    'both pods without the header',
    async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) seen.add(await echo());
      return seen.size === 2;
    },
    10_000,
  );
  const stream = cp.snapshot().shared.get('type.googleapis.com/envoy.config.route.v3.RouteConfiguration')!.get('echo.default.svc.cluster.local:7070')!;
  assert.deepEqual((stream.message as { virtual_hosts: { routes: { name: string }[] }[] }).virtual_hosts[0]!.routes.map((r) => r.name), ['default']);
});
