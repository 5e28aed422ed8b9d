// Writes the committed seed corpus of every fuzz target (corpus/TARGET/seeds/) from real inputs: HTTP/2 frames
// a real client (Node's http2) sends for HBONE-shaped CONNECT requests, the xDS resources the control plane's
// translator makes from the example and seed YAML, that YAML itself, enrollment and CNI requests as the lab and
// a runtime send them, and HTTP/1.1 requests as clients write them. Run it again after a format change:
//
//   npm run build:ts && node dist/test/fuzz/make-seeds.js
//
// Seeds are small on purpose: libFuzzer mutates them, and a seed run starts every CI fuzz run.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { Duplex } from 'node:stream';
import { buildModel } from '../../src/controlplane/model';
import { policyObjects } from '../../src/controlplane/policy';
import { buildRouteModel, invalidIssues, storedRoutes } from '../../src/controlplane/routes/route-tables';
import { ObjectStore } from '../../src/controlplane/store';
import { translate } from '../../src/controlplane/translate';
import { VipAllocator } from '../../src/controlplane/vip-allocator';
import { parseYamlSource } from '../../src/controlplane/yaml-parse';
import { HpackEncoder } from '../../src/proxy/hbone/h2/hpack';
import { CDS, EDS, LDS, RDS } from '../../src/xds/resource-types';
import { FuzzInputWriter } from './input';
import { CORPUS_ROOT } from './runner';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

function write(target: string, name: string, data: Buffer | string): void {
  const dir = path.join(CORPUS_ROOT, target, 'seeds');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, name), data);
}

function clear(target: string): void {
  fs.rmSync(path.join(CORPUS_ROOT, target, 'seeds'), { recursive: true, force: true });
}

/** What Node's http2 client writes for `requests` (sent one after another on one connection), preface included. */
async function clientBytes(requests: { headers: http2.OutgoingHttpHeaders; body?: Buffer }[]): Promise<Buffer> {
  const written: Buffer[] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      written.push(chunk);
      cb();
    },
  });
  const session = http2.connect('http://198.19.1.10:15008', { createConnection: () => socket, settings: { enablePush: false } });
  session.on('error', () => undefined);
  for (const r of requests) {
    const s = session.request(r.headers, { endStream: r.body === undefined });
    s.on('error', () => undefined);
    if (r.body) s.end(r.body);
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
  session.destroy();
  return Buffer.concat(written);
}

/** HEADERS payloads (flags assumed END_HEADERS, no padding or priority, as Node sends them) from a frame stream. */
function headerBlocks(stream: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = stream.subarray(0, PREFACE.length).equals(PREFACE) ? PREFACE.length : 0;
  while (at + 9 <= stream.length) {
    const len = stream.readUIntBE(at, 3);
    if (stream[at + 3] === 0x1) out.push(stream.subarray(at + 9, at + 9 + len));
    at += 9 + len;
  }
  return out;
}

const connect = (authority: string, extra: http2.OutgoingHttpHeaders = {}): http2.OutgoingHttpHeaders => ({ ':method': 'CONNECT', ':authority': authority, ...extra });

async function h2Seeds(): Promise<void> {
  clear('h2-frames');
  clear('hpack');
  const streams: Record<string, Buffer> = {
    'connect-one': await clientBytes([{ headers: connect('198.19.2.10:8080') }]),
    'connect-data': await clientBytes([{ headers: connect('198.19.2.10:9000', { 'x-nodemesh-detected': 'http1' }), body: Buffer.from('GET / HTTP/1.1\r\nhost: a\r\n\r\n') }]),
    'connect-three-v6': await clientBytes([{ headers: connect('[fd00::10]:15008') }, { headers: connect('[fd00::10]:15008') }, { headers: connect('198.19.2.10:80', { 'x-nodemesh-detected': 'tcp' }) }]),
    'get-with-trailers': await clientBytes([{ headers: { ':method': 'POST', ':path': '/echo.Echo/Say', ':scheme': 'http', ':authority': 'web.shop:80', 'content-type': 'application/grpc', te: 'trailers' }, body: Buffer.from('00000000030a0161', 'hex') }]),
  };
  for (const [name, bytes] of Object.entries(streams)) {
    // h2-frames: header-list limit 64 KiB, 16 KiB frames, the target adds the preface, one read.
    const seed = new FuzzInputWriter().pick([256, 4096, 65536], 65536).pick([16384, 1 << 20], 16384).bool(true).int(9, 0).raw(bytes.subarray(PREFACE.length));
    write('h2-frames', name, seed.done());
    // hpack: the connection's header blocks in order, 4 KiB table.
    const blocks = headerBlocks(bytes);
    const hp = new FuzzInputWriter().pick([0, 64, 4096, 65536], 4096).pick([128, 4096, 65536], 65536).bool(false);
    for (const b of blocks) hp.bytes(2048, b);
    write('hpack', name, hp.done());
  }
  // Our own encoder's CONNECT block, and a block split over CONTINUATION.
  const block = new HpackEncoder().encode([[':method', 'CONNECT'], [':authority', '198.19.2.10:8080'], ['x-nodemesh-detected', 'http2']]);
  write('hpack', 'nodemesh-connect', new FuzzInputWriter().pick([0, 64, 4096, 65536], 4096).pick([128, 4096, 65536], 4096).bool(false).bytes(2048, block).done());
  const half = block.length >> 1;
  const frames = Buffer.concat([
    Buffer.from('000000040000000000', 'hex'),
    Buffer.from([0, 0, half, 0x1, 0x0, 0, 0, 0, 1]),
    block.subarray(0, half),
    Buffer.from([0, 0, block.length - half, 0x9, 0x4, 0, 0, 0, 1]),
    block.subarray(half),
    Buffer.from('000004080000000001000f0000', 'hex'),
    Buffer.from('0000080600000000000102030405060708', 'hex'),
    Buffer.from('000004030000000001', 'hex'),
    Buffer.from('00000000', 'hex'),
  ]);
  write('h2-frames', 'continuation-window-ping-rst', new FuzzInputWriter().pick([256, 4096, 65536], 4096).pick([16384, 1 << 20], 16384).bool(true).int(9, 2).int(4096, 20).int(4096, 41).raw(frames).done());
}

function connectSeeds(): void {
  clear('hbone-connect');
  const list = (fields: [string, string][]): Buffer => {
    const w = new FuzzInputWriter().bool(false);
    for (const [n, v] of fields) w.bool(false).string(24, n).string(64, v);
    return w.done();
  };
  write('hbone-connect', 'connect-v4', list([[':method', 'CONNECT'], [':authority', '198.19.2.10:8080']]));
  write('hbone-connect', 'connect-v6-detected', list([[':method', 'CONNECT'], [':authority', '[fd00::10]:15008'], ['x-nodemesh-detected', 'http1']]));
  write('hbone-connect', 'connect-with-path', list([[':method', 'CONNECT'], [':authority', '10.0.0.1:1'], [':path', '/']]));
  write('hbone-connect', 'get', list([[':method', 'GET'], [':scheme', 'https'], [':path', '/'], [':authority', 'a'], ['te', 'trailers']]));
  for (const a of ['198.19.2.10:8080', '[::ffff:198.19.2.10]:65535', '[fe80::1%eth0]:80', '1.2.3.4:0']) {
    write('hbone-connect', `authority-${a.replace(/[^0-9a-z]+/gi, '_')}`, Buffer.concat([Buffer.from([1]), Buffer.from(a, 'latin1')]));
  }
}

function enrollSeeds(): void {
  clear('enroll-request');
  const base = { uid: '5a3f0c1e-0000-4000-8000-000000000001', name: 'web-1', namespace: 'shop', serviceAccount: 'web', netnsPath: '/run/netns/nm-lab-web-1', cgroupPath: '/sys/fs/cgroup/unified/nodemesh-lab-x/web-1', ips: ['198.19.1.10'] };
  // The target's first byte: 0 a raw pod body, 2 a raw CNI event body.
  const pod = (o: unknown): Buffer => Buffer.concat([Buffer.from([0]), Buffer.from(JSON.stringify(o))]);
  const cniEvent = (o: unknown): Buffer => Buffer.concat([Buffer.from([2]), Buffer.from(JSON.stringify(o))]);
  write('enroll-request', 'lab-pod', pod(base));
  write('enroll-request', 'dual-stack-labels', pod({ ...base, ips: ['198.19.1.10', 'fd00::10'], labels: { app: 'web', version: 'v1' }, annotations: { 'nodemesh.io/fail-closed': 'true' } }));
  write('enroll-request', 'proc-netns-no-sa', pod({ ...base, serviceAccount: undefined, netnsPath: '/proc/4242/ns/net' }));
  write('enroll-request', 'bad-ip', pod({ ...base, ips: ['198.19.1.300'] }));
  write('enroll-request', 'cni-add', cniEvent({ command: 'ADD', namespace: 'default', name: 'web', uid: 'u1', containerId: 'c1', netnsPath: '/var/run/netns/cni-1234', ips: ['198.19.1.5', 'fd00::5'] }));
  write('enroll-request', 'cni-del', cniEvent({ command: 'DEL', namespace: 'default', name: 'web', containerId: 'c1', netnsPath: '', ips: [] }));
}

function cniSeeds(): void {
  clear('cni-stdin');
  // The target's choices first (cni-stdin.ts): command, container id set, netns, CNI_ARGS, the agent's answer,
  // the pod's fail-closed annotation, raw text; then stdin.
  const as = (command: string, agent: string, stdin: string): Buffer =>
    Buffer.concat([
      new FuzzInputWriter()
        .pick(['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC', 'add', ''], command)
        .bool(true)
        .pick(['/proc/self/ns/net', '/var/run/netns/gone', ''], '/proc/self/ns/net')
        .bool(true)
        .pick(['IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_UID=u1', 'K8S_POD_NAMESPACE=default', '', 'K8S_POD_NAME=a;K8S_POD_NAMESPACE=b=c;;='], 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_UID=u1')
        .pick(['enrolled', 'not-enrolled', 'down', 'refused-400', 'refused-500', 'no-netns'], agent)
        .pick([true, false, null], false)
        .bool(true)
        .done(),
      Buffer.from(stdin),
    ]);
  const prevResult = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/cni-1234' }], ips: [{ address: '198.19.1.5/24', interface: 0, gateway: '198.19.1.1' }], routes: [{ dst: '0.0.0.0/0' }] };
  const chained = JSON.stringify({ cniVersion: '1.0.0', name: 'k8s-pod-network', type: 'nodemesh-cni', enrollSocket: '/run/nodemesh/agent/enroll.sock', prevResult });
  write('cni-stdin', 'add-chained', as('ADD', 'enrolled', chained));
  write('cni-stdin', 'check-agent-down', as('CHECK', 'down', chained));
  write('cni-stdin', 'del-refused', as('DEL', 'refused-400', chained));
  write('cni-stdin', 'add-0.3.1-dual-stack', as('ADD', 'not-enrolled', JSON.stringify({ cniVersion: '0.3.1', name: 'cbr0', type: 'nodemesh-cni', kubeconfig: '/etc/cni/net.d/nodemesh-cni.kubeconfig', prevResult: { ...prevResult, cniVersion: '0.3.1', ips: [...prevResult.ips, { address: 'fd00::5/64', interface: 0 }] } })));
  write('cni-stdin', 'unchained', as('ADD', 'enrolled', JSON.stringify({ cniVersion: '1.0.0', name: 'x', type: 'nodemesh-cni' })));
  write('cni-stdin', 'version', as('VERSION', 'enrolled', ''));
}

function configSeeds(): string[] {
  clear('config-yaml');
  clear('config-objects');
  clear('xds-resources');
  const texts = [
    { name: 'example-basic', text: fs.readFileSync(path.join(ROOT, 'examples', 'lab', 'basic.yaml'), 'utf8') },
    { name: 'mesh', text: fs.readFileSync(path.join(ROOT, 'test', 'fuzz', 'seeds', 'mesh.yaml'), 'utf8') },
  ];
  const store = new ObjectStore();
  for (const { name, text } of texts) {
    write('config-yaml', `${name}.yaml`, text);
    const update = parseYamlSource(name, `${name}.yaml`, text);
    store.apply(update);
    const raws = update.documents.flatMap((d) => (d.status === 'ok' ? [d.stored.raw] : []));
    write('config-objects', `${name}.json`, JSON.stringify(raws));
    // Each document alone too: smaller seeds mutate better.
    text.split(/^---$/m).forEach((doc, i) => {
      if (/kind:/.test(doc)) write('config-yaml', `${name}-${i}.yaml`, doc.replace(/^\n/, ''));
    });
    raws.forEach((raw, i) => write('config-objects', `${name}-${i}.json`, JSON.stringify(raw)));
  }
  // The lab example's pods have no IPs (the lab assigns them): give them some, so endpoints exist.
  const pods = store.pods().map((p, i) => (p.podIP ? p : { ...p, podIP: `198.19.${(i % 2) + 1}.${10 + i}` }));
  const model = buildModel(store.services(), pods, new VipAllocator(), undefined, policyObjects(store));
  model.routes = buildRouteModel(model.services, storedRoutes(store), invalidIssues(store.issues()));
  const snapshot = translate(model);
  const resources = [...[...snapshot.shared.values()].flatMap((m) => [...m.values()]), ...snapshot.inbound.values()];
  const types = [CDS, EDS, LDS, RDS];
  for (const r of resources) {
    const hash = crypto.createHash('sha1').update(r.any.value).digest('hex').slice(0, 8);
    write('xds-resources', `${r.typeUrl.slice(r.typeUrl.lastIndexOf('.') + 1)}-${r.name.replace(/[^0-9a-z.]+/gi, '_').slice(0, 60)}-${hash}`, Buffer.concat([Buffer.from([types.indexOf(r.typeUrl)]), r.any.value]));
  }
  return resources.map((r) => r.name);
}

function httpSeeds(): void {
  clear('http-sniff');
  clear('http1-server');
  clear('http-headers');
  const sniff = (name: string, bytes: Buffer | string): void => write('http-sniff', name, Buffer.concat([new FuzzInputWriter().int(65536, 10).int(3, 0).done(), Buffer.from(bytes)]));
  sniff('get', 'GET /index.html HTTP/1.1\r\nhost: web\r\n\r\n');
  sniff('h2-preface', Buffer.concat([PREFACE, Buffer.from('000000040000000000', 'hex')]));
  sniff('tls-client-hello', Buffer.from('160301020001000200030300', 'hex'));
  sniff('ssh', 'SSH-2.0-OpenSSH_9.2\r\n');
  sniff('partial-line', 'OPTIONS * HTTP/1.');
  write('http-sniff', 'long-line', Buffer.concat([new FuzzInputWriter().int(65536, 9000).int(3, 1).int(16384, 9000).done(), Buffer.from('GET /a HTTP/1.1\r\n')]));

  const requests: Record<string, string> = {
    'get-keepalive-pipelined': 'GET / HTTP/1.1\r\nHost: web.shop\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\nGET /b?x=1 HTTP/1.1\r\nHost: web.shop\r\nConnection: close\r\n\r\n',
    'post-content-length': 'POST /api/orders HTTP/1.1\r\nHost: web.shop\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"order": 42}',
    'chunked-trailers': 'POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\nTrailer: x-checksum\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: 1\r\n\r\n',
    'websocket-upgrade': 'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    connect: 'CONNECT web.shop:443 HTTP/1.1\r\nHost: web.shop:443\r\n\r\n',
    'http10-expect': 'PUT /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi',
    'smuggling-cl-te': 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG',
    'obs-fold-hop-by-hop': 'GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-drop\r\nX-Drop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: x\r\n\r\n',
  };
  for (const [name, text] of Object.entries(requests)) write('http1-server', name, text);

  const hdr = new FuzzInputWriter().bool(false).string(12, '250m');
  for (const [n, v] of [['content-type', 'application/grpc'], ['connection', 'keep-alive, x-a'], ['x-a', '1'], ['te', 'trailers'], ['set-cookie', 'a=1'], ['set-cookie', 'b=2']] as const) hdr.bool(false).string(16, n).string(48, v);
  write('http-headers', 'grpc-response', hdr.done());
}

async function main(): Promise<void> {
  await h2Seeds();
  connectSeeds();
  enrollSeeds();
  cniSeeds();
  const names = configSeeds();
  httpSeeds();
  console.log(`seeds written under ${path.relative(ROOT, CORPUS_ROOT)} (${names.length} xDS resources)`);
}

if (require.main === module) void main();
