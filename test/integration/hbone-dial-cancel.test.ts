// A CONNECT stream reset while its upstream is being dialled (by the client, or by us for its faults:
// "made you reset", CVE-2025-8671) must not reach the application: the dial is abandoned with the stream.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { ConnectionTracker } from '../../src/proxy/connection-tracker';
import type { ProxyContext } from '../../src/proxy/context';
import { forward } from '../../src/proxy/forward';
import { ErrorCode, FrameType, frame } from '../../src/proxy/hbone/h2/constants';
import { H2Session } from '../../src/proxy/hbone/h2/session';
import type { H2Stream } from '../../src/proxy/hbone/h2/stream';
import type { Workload } from '../../src/state/workloads';
import { createLogger } from '../../src/telemetry/logger';
import { ProxyMetrics, TCP_LABELS, type TcpLabels } from '../../src/telemetry/metrics';
import { CONNECT, RawPeer, u32 } from '../helpers/h2-raw-peer';
import { listen } from '../helpers/tcp';
import { waitFor } from '../helpers/wait';

const POD: Workload = { uid: 'u1', name: 'app', namespace: 'default', serviceAccount: 'app', ips: ['127.0.0.1'], labels: {}, annotations: {}, workloadName: 'app' };
const LABELS = Object.fromEntries(TCP_LABELS.map((l) => [l, 'test'])) as TcpLabels;

describe('HBONE inbound: a stream reset during the upstream dial', () => {
  const cleanup: Array<() => void> = [];
  after(() => {
    for (const c of cleanup.reverse()) c();
  });

  it('never connects to the application once the stream is gone, whoever reset it', async () => {
    // The application: counts the connections it gets.
    let appConnections = 0;
    const app = net.createServer((s) => {
      appConnections++;
      s.destroy();
    });
    const appPort = await listen(app);
    cleanup.push(() => app.close());

    const metrics = new ProxyMetrics(new Registry());
    const ctx = {
      log: createLogger({ level: 'silent' }),
      metrics,
      tracker: new ConnectionTracker(metrics),
      bufferSize: 16 * 1024,
      connectTimeoutMs: 2_000,
      mesh: null,
    } as unknown as ProxyContext;

    // The dial is held at socket creation until the test lets it go, so the reset lands while it is pending.
    const pending: Array<() => void> = [];
    const dials: Array<Promise<void>> = [];
    const server = net.createServer((socket) => {
      const session = new H2Session(socket, { role: 'server', streamWindow: 64 * 1024, connectionWindow: 256 * 1024 });
      session.on('error', () => {});
      cleanup.push(() => session.destroy());
      session.on('stream', (stream: H2Stream) => {
        dials.push(
          forward(ctx, {
            direction: 'inbound',
            pod: POD,
            downstream: { kind: 'hbone', stream, respond: () => {} },
            src: { ip: '127.0.0.1', port: 1 },
            dst: { ip: '127.0.0.1', port: appPort },
            targets: [{ via: 'tcp', ip: '127.0.0.1', port: appPort }],
            labels: () => LABELS,
            sockets: { newSocket: () => new Promise<null>((resolve) => pending.push(() => resolve(null))) } as never,
          }),
        );
      });
    });
    const port = await listen(server);
    cleanup.push(() => server.close());

    const p = new RawPeer(port);
    cleanup.push(() => p.destroy());
    p.start();
    p.ack();
    // Stream 1: reset by the client. Stream 3: reset by us for the client's fault (WINDOW_UPDATE of 0).
    p.write(p.headers(1, CONNECT), p.headers(3, CONNECT));
    await waitFor('both dials pending', async () => pending.length === 2, 3_000);
    p.write(frame(FrameType.RST_STREAM, 0, 1, u32(ErrorCode.CANCEL)), frame(FrameType.WINDOW_UPDATE, 0, 3, u32(0)));
    assert.equal(await p.reset(3), ErrorCode.PROTOCOL_ERROR);
    for (const go of pending) go();
    await Promise.all(dials);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(appConnections, 0, 'the application saw no connection for the reset streams');
  });
});
