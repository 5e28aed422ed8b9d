// Integration: protocol detection on undeclared ports, between two in-process agents over HBONE. HTTP is
// found and routed per request; a server-first protocol is delayed by the source agent's bound only (the
// destination agent is told and does not wait again); a client that sends nothing HTTP-like goes through
// as TCP with its first bytes intact.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { ClusterInfo, EndpointInfo } from '../../src/state/services';
import { appServer, pod, startPair, type L7Pair } from '../helpers/l7-pair';

const base = 10 + Math.floor(Math.random() * 200);
const CLIENT = pod('client', `127.${base}.20.2`, 'client');
const SERVER = pod('mixed', `127.${base}.21.2`, 'mixed');
const BOUND_MS = 100;
const HTTP_VIP = { ip: '10.96.0.30', port: 8081 };
const SMTP_VIP = { ip: '10.96.0.31', port: 2525 };

function cluster(name: string): ClusterInfo {
  return { name, host: `${name}.default.svc.cluster.local`, lbPolicy: 'round_robin', connectTimeoutMs: 2000, protocol: 'detect' };
}
function ep(port: number): EndpointInfo {
  return { ip: SERVER.ip, port, pod: SERVER.name, namespace: 'default', serviceAccount: SERVER.serviceAccount, inMesh: true };
}

describe('protocol detection on undeclared ports (in-process agents over HBONE)', () => {
  let pair: L7Pair;
  let web: http.Server;
  let smtp: net.Server;

  before(async () => {
    web = await appServer(SERVER.ip, 8081, 'mixed');
    // Server-first: greets as soon as a client connects, then echoes lines.
    smtp = net.createServer((s) => {
      s.on('error', () => undefined);
      s.write('220 mixed ESMTP ready\r\n');
      s.on('data', (d) => s.write(`250 ${d.toString().trim()}\r\n`));
      s.on('end', () => s.end());
    });
    await new Promise<void>((r) => smtp.listen(2525, SERVER.ip, r));
    pair = await startPair(CLIENT, [SERVER]);
    pair.configure({
      clusters: [cluster('web'), cluster('smtp')],
      endpoints: new Map([
        ['web', [ep(8081)]],
        ['smtp', [ep(2525)]],
      ]),
      vips: [
        { vip: HTTP_VIP.ip, port: HTTP_VIP.port, cluster: 'web', protocol: 'detect', detectTimeoutMs: BOUND_MS },
        { vip: SMTP_VIP.ip, port: SMTP_VIP.port, cluster: 'smtp', protocol: 'detect', detectTimeoutMs: BOUND_MS },
      ],
    });
  });

  after(async () => {
    await pair?.close();
    web?.close();
    smtp?.close();
  });

  it('finds HTTP/1.1 and serves it as L7 (counted per request by both agents)', async () => {
    pair.setDestination(HTTP_VIP);
    for (let i = 0; i < 3; i++) {
      const status = await new Promise<number>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: pair.clientPort, path: `/d${i}`, headers: { host: 'web' } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        }).on('error', reject);
      });
      assert.equal(status, 200);
    }
    assert.match(await pair.registryA.getSingleMetricAsString('istio_requests_total'), /reporter="source".*destination_service="web.default.svc.cluster.local".*response_code="200".*\} 3$/m);
    assert.match(await pair.registryB.getSingleMetricAsString('istio_requests_total'), /reporter="destination".*response_code="200".*\} 3$/m);
  });

  it('a server-first protocol gets its greeting after the bound, once: the destination agent does not wait again', async () => {
    pair.setDestination(SMTP_VIP);
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      const started = process.hrtime.bigint();
      const lines = await new Promise<string>((resolve, reject) => {
        const s = net.connect(pair.clientPort, '127.0.0.1');
        let got = '';
        s.on('data', (d) => {
          got += d.toString();
          if (got.startsWith('220') && !got.includes('250')) {
            delays.push(Number(process.hrtime.bigint() - started) / 1e6);
            s.write('HELO test\r\n');
          }
          if (got.includes('250')) {
            s.end();
            resolve(got);
          }
        });
        s.on('error', reject);
      });
      assert.equal(lines, '220 mixed ESMTP ready\r\n250 HELO test\r\n');
    }
    // Not a timing benchmark: the greeting must come after about one bound, never two and never a stall.
    const worst = Math.max(...delays);
    assert.ok(delays.every((d) => d >= BOUND_MS * 0.9), `waited at least the bound: ${delays.map((d) => d.toFixed(0)).join(', ')} ms`);
    assert.ok(worst < BOUND_MS * 2 + 150, `greeting within one bound (+ slack), got ${delays.map((d) => d.toFixed(0)).join(', ')} ms`);
    const b = await pair.registryB.getSingleMetricAsString('nodemesh_proxy_errors_total');
    assert.doesNotMatch(b, /reason="detect_timeout"/, 'the destination agent never ran its own detection bound');
  });

  it('a client that speaks first but not HTTP goes through as TCP with its bytes intact', async () => {
    pair.setDestination(SMTP_VIP);
    const got = await new Promise<string>((resolve, reject) => {
      const s = net.connect(pair.clientPort, '127.0.0.1');
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString();
        if (buf.includes('250 EHLO')) {
          s.end();
          resolve(buf);
        }
      });
      s.on('error', reject);
      s.write('EHLO client.example\r\n');
    });
    assert.equal(got, '220 mixed ESMTP ready\r\n250 EHLO client.example\r\n');
  });
});
