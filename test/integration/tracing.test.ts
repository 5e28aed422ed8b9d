// Integration: distributed tracing through two in-process agents over real HBONE. One request gives one trace:
// a CLIENT span at the source agent and a SERVER span at the destination, the server's parent the client's,
// exported over OTLP/HTTP to a receiver here (decoded with its own schema, not the agent's decoder) and over
// OTLP/gRPC to the control plane's embedded store. Incoming W3C and B3 contexts are continued, a malformed
// traceparent starts a fresh trace, unsampled failures are kept, route overrides apply, and a collector that
// is down costs requests nothing but the spans, which are counted as dropped.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import protobuf from 'protobufjs';
import { Registry } from 'prom-client';
import { startControlPlane, type ControlPlaneHandle } from '../../src/controlplane/control-plane';
import type { ClusterInfo, EndpointInfo } from '../../src/state/services';
import type { RouteTable } from '../../src/state/routes';
import { createLogger } from '../../src/telemetry/logger';
import { DEFAULT_SAMPLING, type SamplingConfig } from '../../src/telemetry/tracing/sampling';
import { createSpanQueue, type OtlpEndpoint } from '../../src/telemetry/tracing/tracing-config';
import { Tracer } from '../../src/telemetry/tracing/tracer';
import type { SpanQueue } from '../../src/telemetry/tracing/span-queue';
import { appServer, pod, startPair, type L7Pair } from '../helpers/l7-pair';
import { waitFor } from '../helpers/wait';

const base = 10 + Math.floor(Math.random() * 200);
const CLIENT = pod('client', `127.${base}.2.2`, 'client', { app: 'client' });
const WEB = pod('web-v1', `127.${base}.3.2`, 'web', { app: 'web', version: 'v1' });
const VIP = { ip: '10.96.0.20', port: 80 };
const HOST = 'web.default.svc.cluster.local';
const EP: EndpointInfo = { ip: WEB.ip, port: 8080, pod: WEB.name, namespace: 'default', serviceAccount: 'web', inMesh: true };
const CLUSTER: ClusterInfo = { name: 'outbound|80||web.default.svc.cluster.local', host: HOST, lbPolicy: 'round_robin', connectTimeoutMs: 2000, protocol: 'http' };
const ROUTES: RouteTable = {
  name: 'web-routes',
  routes: [
    { name: 'default/web/api', source: { kind: 'HTTPRoute', namespace: 'default', name: 'web' }, matches: [{ path: { kind: 'prefix', value: '/api' }, headers: [], query: [] }], action: { kind: 'forward', backends: [{ cluster: CLUSTER.name, weight: 1 }] } },
    { name: 'default/web/rest', source: { kind: 'HTTPRoute', namespace: 'default', name: 'web' }, matches: [], action: { kind: 'forward', backends: [{ cluster: CLUSTER.name, weight: 1 }] } },
  ],
};

/** The OTLP trace schema as published (opentelemetry-proto v1), for an independent decoder. */
const OTLP = protobuf.Root.fromJSON({
  nested: {
    otlp: {
      nested: {
        AnyValue: { fields: { stringValue: { type: 'string', id: 1 }, boolValue: { type: 'bool', id: 2 }, intValue: { type: 'int64', id: 3 }, doubleValue: { type: 'double', id: 4 }, arrayValue: { type: 'ArrayValue', id: 5 } } },
        ArrayValue: { fields: { values: { rule: 'repeated', type: 'AnyValue', id: 1 } } },
        KeyValue: { fields: { key: { type: 'string', id: 1 }, value: { type: 'AnyValue', id: 2 } } },
        Resource: { fields: { attributes: { rule: 'repeated', type: 'KeyValue', id: 1 } } },
        Scope: { fields: { name: { type: 'string', id: 1 }, version: { type: 'string', id: 2 } } },
        Status: { fields: { message: { type: 'string', id: 2 }, code: { type: 'int32', id: 3 } } },
        Span: {
          fields: {
            traceId: { type: 'bytes', id: 1 },
            spanId: { type: 'bytes', id: 2 },
            traceState: { type: 'string', id: 3 },
            parentSpanId: { type: 'bytes', id: 4 },
            name: { type: 'string', id: 5 },
            kind: { type: 'int32', id: 6 },
            startTimeUnixNano: { type: 'fixed64', id: 7 },
            endTimeUnixNano: { type: 'fixed64', id: 8 },
            attributes: { rule: 'repeated', type: 'KeyValue', id: 9 },
            status: { type: 'Status', id: 15 },
            flags: { type: 'fixed32', id: 16 },
          },
        },
        ScopeSpans: { fields: { scope: { type: 'Scope', id: 1 }, spans: { rule: 'repeated', type: 'Span', id: 2 } } },
        ResourceSpans: { fields: { resource: { type: 'Resource', id: 1 }, scopeSpans: { rule: 'repeated', type: 'ScopeSpans', id: 2 } } },
        ExportTraceServiceRequest: { fields: { resourceSpans: { rule: 'repeated', type: 'ResourceSpans', id: 1 } } },
      },
    },
  },
});
const ExportRequest = OTLP.lookupType('otlp.ExportTraceServiceRequest');

interface Span {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  start: bigint;
  end: bigint;
  flags: number;
  status: { code?: number; message?: string };
  attrs: Record<string, unknown>;
  resource: Record<string, unknown>;
}

function value(v: Record<string, unknown> | undefined): unknown {
  if (!v) return undefined;
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('boolValue' in v) return v.boolValue;
  if ('doubleValue' in v) return v.doubleValue;
  if ('arrayValue' in v) return ((v.arrayValue as { values?: Record<string, unknown>[] }).values ?? []).map(value);
  return undefined;
}

function kv(list: { key: string; value?: Record<string, unknown> }[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((a) => [a.key, value(a.value)]));
}

/** A test OTLP/HTTP receiver: every span it was sent, decoded with the published schema. */
async function otlpHttpReceiver(): Promise<{ url: string; spans: Span[]; close(): void }> {
  const spans: Span[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      assert.equal(req.url, '/v1/traces');
      assert.equal(req.headers['content-type'], 'application/x-protobuf');
      const msg = ExportRequest.toObject(ExportRequest.decode(Buffer.concat(chunks)), { longs: String, bytes: Buffer }) as {
        resourceSpans?: { resource?: { attributes?: { key: string; value?: Record<string, unknown> }[] }; scopeSpans?: { scope?: { name: string }; spans?: Record<string, unknown>[] }[] }[];
      };
      for (const rs of msg.resourceSpans ?? []) {
        const resource = kv(rs.resource?.attributes);
        for (const ss of rs.scopeSpans ?? []) {
          assert.equal(ss.scope?.name, 'nodemesh');
          for (const s of ss.spans ?? []) {
            spans.push({
              traceId: (s.traceId as Buffer).toString('hex'),
              spanId: (s.spanId as Buffer).toString('hex'),
              parentSpanId: s.parentSpanId ? (s.parentSpanId as Buffer).toString('hex') : '',
              name: s.name as string,
              kind: s.kind as number,
              start: BigInt(s.startTimeUnixNano as string),
              end: BigInt(s.endTimeUnixNano as string),
              flags: (s.flags as number) ?? 0,
              status: (s.status as Span['status']) ?? {},
              attrs: kv(s.attributes as { key: string; value?: Record<string, unknown> }[]),
              resource,
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, spans, close: () => server.close() };
}

interface Traced {
  pair: L7Pair;
  queues: SpanQueue[];
  registries: Registry[];
}

async function tracedPair(endpoint: OtlpEndpoint, sampling: Partial<SamplingConfig> = {}): Promise<Traced> {
  const queues: SpanQueue[] = [];
  const registries: Registry[] = [];
  const log = createLogger({ level: 'silent' });
  const pair = await startPair(CLIENT, [WEB], {
    extra: (node, registry) => {
      const queue = createSpanQueue({ sampling: DEFAULT_SAMPLING, endpoint, queue: { intervalMs: 30, backoffMs: 50 } }, registry, log)!;
      queues.push(queue);
      registries.push(registry);
      return { tracer: new Tracer({ sampling: { ...DEFAULT_SAMPLING, ...sampling }, sink: queue, registry, node: `node-${node}` }), locality: { node: `node-${node}` } };
    },
  });
  pair.configure({ clusters: [CLUSTER], endpoints: new Map([[CLUSTER.name, [EP]]]), vips: [{ vip: VIP.ip, port: VIP.port, cluster: CLUSTER.name, protocol: 'http', routeTable: ROUTES.name }], routes: [ROUTES] });
  pair.setDestination(VIP);
  return { pair, queues, registries };
}

async function closeTraced(t: Traced): Promise<void> {
  await t.pair.close();
  for (const q of t.queues) await q.close(200);
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host: HOST, connection: 'close', ...headers } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** What the application saw of the trace context. */
let lastSeen: http.IncomingHttpHeaders = {};

describe('tracing through two agents', () => {
  let app: http.Server;
  let receiver: Awaited<ReturnType<typeof otlpHttpReceiver>>;

  before(async () => {
    app = await appServer(WEB.ip, 8080, 'web-v1', (req, res) => {
      lastSeen = req.headers;
      const status = req.url?.startsWith('/fail') ? 500 : req.url?.startsWith('/unavailable') ? 503 : 200;
      req.resume();
      req.on('end', () => res.writeHead(status, { 'content-type': 'text/plain' }).end('ok'));
    });
    receiver = await otlpHttpReceiver();
  });

  after(() => {
    app?.close();
    receiver?.close();
  });

  const spansOf = (traceId: string): Span[] => receiver.spans.filter((s) => s.traceId === traceId);

  it('one request gives one trace: a client span at the source, a server span at the destination as its child, with HTTP and mesh attributes', async () => {
    const t = await tracedPair({ protocol: 'http/protobuf', address: `${receiver.url}/v1/traces` }, { defaultPercent: 100 });
    try {
      const r = await get(t.pair.clientPort, '/api/items?id=3', { 'x-request-id': 'req-trace-1', 'user-agent': 'trace-test' });
      assert.equal(r.status, 200);
      const tp = String(lastSeen.traceparent);
      const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(tp);
      assert.ok(m, `the application got a sampled traceparent: ${tp}`);
      const traceId = m[1]!;
      await waitFor('both spans exported', async () => spansOf(traceId).length === 2, 5000);
      const spans = spansOf(traceId);
      const client = spans.find((s) => s.kind === 3)!;
      const server = spans.find((s) => s.kind === 2)!;
      assert.ok(client && server, 'one CLIENT and one SERVER span');
      assert.equal(client.parentSpanId, '', 'the client span is the root: the request came with no context');
      assert.equal(server.parentSpanId, client.spanId, "the server span's parent is the client span");
      assert.equal(m[2], server.spanId, "the application's parent is the server span");
      assert.equal(client.flags & 1, 1);
      assert.ok(client.start <= server.start && server.end <= client.end, 'the server span lies within the client span');
      assert.equal(client.name, `GET ${HOST}`);
      assert.equal(client.resource['service.name'], 'client.default');
      assert.equal(server.resource['service.name'], 'web.default');
      assert.equal(server.resource['k8s.node.name'], 'node-b');
      assert.equal(client.attrs['nodemesh.source.workload'], 'client');
      // (In-process the tunnel comes from 127.0.0.1, which names no pod: the server side knows the caller by its principal.)
      for (const s of [client, server]) {
        assert.equal(s.attrs['http.request.method'], 'GET');
        assert.equal(s.attrs['http.response.status_code'], 200);
        assert.deepEqual(s.attrs['http.request.header.x-request-id'], ['req-trace-1']);
        assert.equal(s.attrs['user_agent.original'], 'trace-test');
        assert.equal(s.attrs['nodemesh.destination.workload'], 'web-v1');
        assert.equal(s.attrs['nodemesh.destination.namespace'], 'default');
        assert.equal(s.attrs['nodemesh.source.principal'], 'spiffe://cluster.local/ns/default/sa/client');
        assert.equal(s.attrs['nodemesh.destination.principal'], 'spiffe://cluster.local/ns/default/sa/web');
        assert.equal(s.attrs['nodemesh.response_flags'], '-');
        assert.equal(s.attrs['nodemesh.connection_security_policy'], 'mutual_tls');
        assert.equal(s.status.code ?? 0, 0);
      }
      assert.equal(client.attrs['url.full'], `http://${HOST}/api/items?id=3`);
      assert.equal(client.attrs['nodemesh.route'], 'default/web/api');
      assert.equal(client.attrs['nodemesh.cluster'], CLUSTER.name);
      assert.equal(client.attrs['nodemesh.endpoint'], `${WEB.ip}:8080`);
      assert.equal(client.attrs['nodemesh.attempts'], 1);
      assert.equal(server.attrs['url.path'], '/api/items');
      assert.equal(server.attrs['url.query'], 'id=3');
    } finally {
      await closeTraced(t);
    }
  });

  it('continues an incoming traceparent, and starts a fresh trace when it is malformed', async () => {
    const t = await tracedPair({ protocol: 'http/protobuf', address: `${receiver.url}/v1/traces` }, { defaultPercent: 0 });
    try {
      const tid = 'aaaabbbbccccdddd0000111122223333';
      await get(t.pair.clientPort, '/x', { traceparent: `00-${tid}-1111222233334444-01`, tracestate: 'vendor=v1' });
      assert.match(String(lastSeen.traceparent), new RegExp(`^00-${tid}-[0-9a-f]{16}-01$`));
      assert.equal(lastSeen.tracestate, 'vendor=v1');
      await waitFor('the continued trace exported', async () => spansOf(tid).length === 2, 5000);
      const client = spansOf(tid).find((s) => s.kind === 3)!;
      assert.equal(client.parentSpanId, '1111222233334444');

      // Malformed (upper case, short): ignored; sampling 0 % and no failure, so the fresh trace is not kept.
      for (const bad of ['00-AAAABBBBCCCCDDDD0000111122223333-1111222233334444-01', '00-abc-01', `00-${'0'.repeat(32)}-1111222233334444-01`]) {
        const before = receiver.spans.length;
        await get(t.pair.clientPort, '/x', { traceparent: bad, tracestate: 'vendor=lost' });
        const seen = /^00-([0-9a-f]{32})-[0-9a-f]{16}-00$/.exec(String(lastSeen.traceparent));
        assert.ok(seen, `a fresh, unsampled context replaced "${bad}": ${lastSeen.traceparent}`);
        assert.notEqual(seen[1], tid);
        assert.equal(lastSeen.tracestate, undefined, 'tracestate goes with the malformed traceparent');
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(receiver.spans.length, before, 'nothing recorded: not sampled, not failed');
      }
    } finally {
      await closeTraced(t);
    }
  });

  it('accepts B3 single and multi headers and answers in the same form', async () => {
    const t = await tracedPair({ protocol: 'http/protobuf', address: `${receiver.url}/v1/traces` }, { defaultPercent: 0 });
    try {
      const single = '0123456789abcdef0123456789abcdef';
      await get(t.pair.clientPort, '/x', { b3: `${single}-00f067aa0ba902b7-1` });
      assert.match(String(lastSeen.b3), new RegExp(`^${single}-[0-9a-f]{16}-1$`));
      assert.match(String(lastSeen.traceparent), new RegExp(`^00-${single}-`));
      const multi = '463ac35c9f6413ad';
      await get(t.pair.clientPort, '/x', { 'x-b3-traceid': multi, 'x-b3-spanid': 'a2fb4a1d1a96d312', 'x-b3-sampled': '1' });
      assert.equal(lastSeen['x-b3-traceid'], `0000000000000000${multi}`);
      assert.equal(lastSeen['x-b3-sampled'], '1');
      await waitFor('both B3 traces exported', async () => spansOf(single).length === 2 && spansOf(`0000000000000000${multi}`).length === 2, 5000);
      assert.equal(spansOf(single).find((s) => s.kind === 3)!.parentSpanId, '00f067aa0ba902b7');
    } finally {
      await closeTraced(t);
    }
  });

  it('keeps the spans of failed requests that were not sampled, in one trace, and no others', async () => {
    const t = await tracedPair({ protocol: 'http/protobuf', address: `${receiver.url}/v1/traces` }, { defaultPercent: 0 });
    try {
      const before = receiver.spans.length;
      assert.equal((await get(t.pair.clientPort, '/fine')).status, 200);
      const r = await get(t.pair.clientPort, '/fail/now');
      assert.equal(r.status, 500);
      const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-00$/.exec(String(lastSeen.traceparent));
      assert.ok(m, 'the failed request carried an unsampled context');
      await waitFor('both failed spans exported', async () => spansOf(m[1]!).length === 2, 5000);
      const spans = spansOf(m[1]!);
      const client = spans.find((s) => s.kind === 3)!;
      const server = spans.find((s) => s.kind === 2)!;
      assert.equal(server.parentSpanId, client.spanId);
      for (const s of spans) {
        assert.equal(s.flags & 1, 0, 'flagged as not sampled');
        assert.equal(s.attrs['nodemesh.sampling'], 'failure');
        assert.equal(s.status.code, 2);
        assert.equal(s.attrs['error.type'], '500');
      }
      // An explicit "do not sample" from the caller is honoured, and a failure is still kept.
      const tid = '99998888777766665555444433332222';
      await get(t.pair.clientPort, '/fail/again', { traceparent: `00-${tid}-1111222233334444-00` });
      await waitFor('the failed request of an unsampled caller kept', async () => spansOf(tid).length === 2, 5000);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(receiver.spans.length - before, 4, 'only the two failed requests left spans');
      const recorded = await t.registries[0]!.getSingleMetricAsString('nodemesh_tracing_spans_recorded_total');
      assert.match(recorded, /kept="failure"\} 2/);

      // A 503 is retried (Istio's default policy): one client span with the resend count, a server span per attempt.
      assert.equal((await get(t.pair.clientPort, '/unavailable')).status, 503);
      const u = /^00-([0-9a-f]{32})-/.exec(String(lastSeen.traceparent))![1]!;
      await waitFor('the retried request exported', async () => spansOf(u).length === 4, 5000);
      const uc = spansOf(u).find((s) => s.kind === 3)!;
      assert.equal(uc.attrs['http.request.resend_count'], 2);
      assert.equal(uc.attrs['nodemesh.attempts'], 3);
      assert.deepEqual(spansOf(u).filter((s) => s.kind === 2).map((s) => s.parentSpanId), [uc.spanId, uc.spanId, uc.spanId]);
    } finally {
      await closeTraced(t);
    }
  });

  it('a route override samples its requests at its own rate', async () => {
    const t = await tracedPair({ protocol: 'http/protobuf', address: `${receiver.url}/v1/traces` }, { defaultPercent: 0, routes: { 'default/web/api': 100 } });
    try {
      await get(t.pair.clientPort, '/api/one');
      assert.match(String(lastSeen.traceparent), /-01$/);
      await get(t.pair.clientPort, '/other');
      assert.match(String(lastSeen.traceparent), /-00$/);
    } finally {
      await closeTraced(t);
    }
  });

  it("exports over OTLP/gRPC to the control plane's embedded trace store", async () => {
    const cp: ControlPlaneHandle = await startControlPlane({ xdsAddress: '127.0.0.1:0', metricsPort: false, logLevel: 'silent' });
    const t = await tracedPair({ protocol: 'grpc', address: cp.address }, { defaultPercent: 100 });
    try {
      await get(t.pair.clientPort, '/api/grpc-export');
      const traceId = /^00-([0-9a-f]{32})-/.exec(String(lastSeen.traceparent))![1]!;
      await waitFor('both spans in the embedded store', async () => (cp.traces!.get(traceId)?.spans.length ?? 0) === 2, 5000);
      const trace = cp.traces!.get(traceId)!;
      const client = trace.spans.find((s) => s.kind === 3)!;
      const server = trace.spans.find((s) => s.kind === 2)!;
      assert.equal(server.parentSpanId, client.spanId);
      assert.equal(server.resource['service.name'], 'web.default');
      const summary = cp.traces!.list().find((s) => s.traceId === traceId)!;
      assert.equal(summary.spans, 2);
      assert.equal(summary.failed, false);
      assert.deepEqual(summary.services.sort(), ['client.default', 'web.default']);
    } finally {
      await closeTraced(t);
      await cp.close();
    }
  });

  it('a collector that is down costs requests nothing; the spans are counted as dropped', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const t = await tracedPair({ protocol: 'http/protobuf', address: `http://127.0.0.1:${port}/v1/traces` }, { defaultPercent: 100 });
    try {
      for (let i = 0; i < 20; i++) assert.equal((await get(t.pair.clientPort, `/api/${i}`)).status, 200);
      await waitFor(
        'every span counted as dropped',
        async () => {
          const text = (await t.registries[0]!.metrics()) + (await t.registries[1]!.metrics());
          const dropped = [...text.matchAll(/nodemesh_tracing_spans_dropped_total\{reason="export_failed"\} (\d+)/g)].reduce((n, x) => n + Number(x[1]), 0);
          return dropped === 40;
        },
        5000,
      );
    } finally {
      await closeTraced(t);
    }
  });
});
