// HTTPRoutes from watched files reach a real agent's RouteStore over ADS (delta and SotW); an invalid edit keeps
// the last good routes, and the control plane reports it with file:line:field and Accepted=False.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Agent } from '../../src/agent/agent';
import { startControlPlane, type ControlPlaneHandle } from '../../src/controlplane/control-plane';
import { unixRequest } from '../../src/enroll/client';
import type { RouteTable } from '../../src/state/routes';
import { silentLogger } from '../../src/telemetry/logger';
import { testAgent } from '../helpers/agent';
import { FakeDatapath } from '../helpers/fake-datapath';
import { waitFor } from '../helpers/wait';

const SERVICES = `apiVersion: v1
kind: Service
metadata: { name: echo, namespace: mesh }
spec: { clusterIP: 198.18.200.20, selector: { app: echo }, ports: [{ name: http, port: 80, targetPort: 8080 }, { name: web, port: 8000 }] }
---
apiVersion: v1
kind: Service
metadata: { name: echo-v2, namespace: mesh }
spec: { clusterIP: 198.18.200.21, selector: { app: echo-v2 }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
`;

const route = (v1: number, v2: number, extra = '') => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: canary, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
    - matches: [{ headers: [{ name: x-canary, value: "true" }] }]
      backendRefs: [{ name: echo-v2, port: 80 }]
    - backendRefs: [{ name: echo, port: 80, weight: ${v1} }, { name: echo-v2, port: 80, weight: ${v2} }]${extra}
`;

const TABLE = 'routes|echo.mesh.svc.cluster.local:80';

function weights(agent: Agent): number[] | undefined {
  const t: RouteTable | undefined = agent.routes.get(TABLE);
  const last = t?.routes.at(-1)?.action;
  return last?.kind === 'forward' ? last.backends.map((b) => b.weight) : undefined;
}

for (const mode of ['delta', 'sotw'] as const) {
  describe(`routes follow the files over ADS (${mode})`, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `nm-routes-${mode}-`));
    const cfg = path.join(dir, 'config');
    let cp: ControlPlaneHandle;
    let agent: Agent;

    before(async () => {
      fs.mkdirSync(cfg);
      fs.writeFileSync(path.join(cfg, 'services.yaml'), SERVICES);
      fs.writeFileSync(path.join(cfg, 'canary.yaml'), route(90, 10));
      cp = await startControlPlane({ config: cfg, xdsAddress: '127.0.0.1:0', metricsPort: false, logger: silentLogger(), watchDebounceMs: 20, detectTimeoutMs: 150 });
      agent = testAgent(dir, new FakeDatapath(), { drainMs: 500, xds: { address: cp.address, mode } });
      await agent.start();
    });
    after(async () => {
      await agent.shutdown();
      await cp.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('the agent holds every VIP port with its protocol and route table, and becomes ready only with them', async () => {
      await waitFor('the canary table', async () => weights(agent)?.join() === '90,10');
      assert.equal(agent.notReadyReason(), null);
      assert.deepEqual(agent.services.servicePort('198.18.200.20', 80), {
        vip: '198.18.200.20',
        port: 80,
        cluster: 'outbound|80||echo.mesh.svc.cluster.local',
        protocol: 'http',
        routeTable: TABLE,
      });
      assert.equal(agent.services.servicePort('198.18.200.20', 8000)!.protocol, 'detect');
      assert.equal(agent.services.servicePort('198.18.200.20', 8000)!.detectTimeoutMs, 150);
      // Every HTTP port's table (defaults included) and nothing else was asked for.
      assert.deepEqual(agent.routes.all().map((t) => t.name).sort(), ['routes|echo-v2.mesh.svc.cluster.local:80', TABLE, 'routes|echo.mesh.svc.cluster.local:8000']);
      const dump = JSON.parse((await unixRequest(agent.adminSocket, 'GET', '/config_dump')).body) as { routes: RouteTable[] };
      assert.equal(dump.routes.length, 3);
    });

    it('an edit of the route file reaches the RouteStore: the canary goes to 100 %', async () => {
      const gen = agent.routes.generation();
      fs.writeFileSync(path.join(cfg, 'canary.yaml'), route(0, 100));
      await waitFor('the new weights', async () => weights(agent)?.join() === '0,100');
      assert.ok(agent.routes.generation() > gen);
    });

    it('an invalid edit keeps the last good routes; status says Accepted=False with file:line:field', async () => {
      fs.writeFileSync(path.join(cfg, 'canary.yaml'), route(0, 100, '\n      filters: [{ type: RequestRedirect, requestRedirect: { statusCode: 304 } }]'));
      const status = await waitFor('the invalid status', async () => cp.routeStatus().find((s) => s.name === 'canary' && s.invalid));
      const file = path.join(cfg, 'canary.yaml');
      assert.equal(status.invalid![0]!.field, 'spec.rules[1].filters[0].requestRedirect.statusCode');
      assert.equal(status.invalid![0]!.line, 10);
      const accepted = status.parents[0]!.conditions[0]!;
      assert.deepEqual([accepted.type, accepted.status, accepted.reason], ['Accepted', 'False', 'UnsupportedValue']);
      assert.equal(
        accepted.message,
        `invalid: ${file}:10: HTTPRoute "canary": field spec.rules[1].filters[0].requestRedirect.statusCode: 304 is not a redirect status Gateway API allows (301, 302, 303, 307, 308); the last good version of this route is still served`,
      );
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(weights(agent)?.join(), '0,100', 'the agent keeps the last good table');
      // Fixed again: accepted, and the change flows.
      fs.writeFileSync(path.join(cfg, 'canary.yaml'), route(50, 50));
      await waitFor('the fixed weights', async () => weights(agent)?.join() === '50,50');
      await waitFor('Accepted again', async () => cp.routeStatus().find((s) => s.name === 'canary' && !s.invalid && s.parents[0]!.conditions[0]!.status === 'True'));
    });

    it('a route to a new Service port makes the agent subscribe to its table, and deleting the route falls back to the default', async () => {
      fs.writeFileSync(
        path.join(cfg, 'web.yaml'),
        `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: client }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, namespace: mesh, port: 8000 }]
  rules: [{ backendRefs: [{ name: echo-v2, namespace: mesh, port: 80 }] }]
`,
      );
      const consumer = 'routes|echo.mesh.svc.cluster.local:8000|consumer=client';
      await waitFor('the consumer table', async () => agent.routes.get(consumer));
      assert.deepEqual(agent.services.servicePort('198.18.200.20', 8000)!.consumerRouteTables, { client: consumer });
      fs.rmSync(path.join(cfg, 'web.yaml'));
      fs.rmSync(path.join(cfg, 'canary.yaml'));
      await waitFor('the default table again', async () => agent.routes.get(TABLE)?.routes.map((r) => r.name).join() === 'default' && !agent.routes.get(consumer));
      assert.equal(agent.services.servicePort('198.18.200.20', 8000)!.consumerRouteTables, undefined);
    });
  });
}
