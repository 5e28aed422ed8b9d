// A pod whose first certificate request failed: its 15008 must be served as soon as a certificate arrives,
// without a restart (on the main thread and on a data-plane worker's identity replica).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { IdentityReplica } from '../../src/identity/replica';
import type { CertBundle, IdentitySource } from '../../src/identity/types';
import type { PodSockets } from '../../src/proxy/context';
import { HboneClientPool } from '../../src/proxy/hbone';
import { ProxyRuntime } from '../../src/proxy/runtime';
import type { Workload } from '../../src/state/workloads';
import { silentLogger } from '../../src/telemetry/logger';
import { createTestCa } from '../helpers/test-ca';
import { echoServer, listen } from '../helpers/tcp';
import { waitFor } from '../helpers/wait';

const TD = 'spiffe://cluster.local/ns/default/sa';
const CLIENT_ID = `${TD}/client`;
const ECHO_ID = `${TD}/echo`;

// A bound, not yet listening fd on 127.0.0.1, as the agent gets from the pod netns.
interface RawTcp {
  bind(host: string, port: number): number;
  getsockname(out: { port?: number }): number;
  fd: number;
}
const { TCP, constants } = (process as unknown as { binding(name: string): { TCP: new (t: number) => RawTcp; constants: { SERVER: number } } }).binding('tcp_wrap');
const keep: RawTcp[] = [];
function boundFd(): { fd: number; port: number } {
  const h = new TCP(constants.SERVER);
  assert.equal(h.bind('127.0.0.1', 0), 0);
  const out: { port?: number } = {};
  h.getsockname(out);
  keep.push(h);
  return { fd: h.fd, port: out.port! };
}

/** The main thread's provider as the proxy sees it: the first request fails, a later issuance succeeds. */
class FlakyIdentity implements IdentitySource {
  private bundle: CertBundle | null = null;
  private failure: Error | null = null;
  private waiters: { resolve: (b: CertBundle) => void; reject: (e: Error) => void }[] = [];

  constructor(private readonly roots: string[]) {}

  certFor(): Promise<CertBundle> {
    if (this.bundle) return Promise.resolve(this.bundle);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  current(): CertBundle | null {
    return this.bundle;
  }

  trustBundle(): string[] {
    return this.roots;
  }

  fail(message: string): void {
    this.failure = new Error(message);
    for (const w of this.waiters.splice(0)) w.reject(this.failure);
  }

  issue(b: CertBundle): void {
    this.bundle = b;
    this.failure = null;
    for (const w of this.waiters.splice(0)) w.resolve(b);
  }
}

const pod: Workload = {
  uid: 'uid-echo',
  name: 'echo',
  namespace: 'default',
  serviceAccount: 'echo',
  ips: ['127.0.0.1'],
  labels: {},
  annotations: {},
  workloadName: 'echo',
};

const sockets: PodSockets = { newSocket: async () => null, originalDst: () => null };

describe('15008 after a failed first certificate request', () => {
  const ca = createTestCa();
  const echo = echoServer();
  let echoPort = 0;
  const pool = new HboneClientPool({ connectTimeoutMs: 2000 });
  const runtimes: ProxyRuntime[] = [];

  before(async () => {
    echoPort = await listen(echo);
  });
  after(async () => {
    await pool.close();
    for (const r of runtimes) {
      r.stopAll();
      r.destroy();
    }
    echo.close();
  });

  async function roundTrip(hbonePort: number): Promise<string> {
    const { stream } = await pool.connect({
      sourcePod: `pod-${hbonePort}`,
      source: ca.issue({ spiffeId: CLIENT_ID }),
      expectedServerId: ECHO_ID,
      address: { ip: '127.0.0.1', port: hbonePort },
      target: { ip: '127.0.0.1', port: echoPort },
      newSocket: async () => null,
    });
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve(Buffer.concat(chunks).toString()));
      stream.once('close', () => reject(stream.error ?? new Error('stream closed')));
      stream.write(Buffer.from('ping'));
      stream.end();
      stream.resume();
    });
  }

  async function startPod(identity: IdentitySource): Promise<{ runtime: ProxyRuntime; hbonePort: number }> {
    const runtime = new ProxyRuntime({ log: silentLogger(), registry: new Registry(), mesh: { identity, trustDomain: 'cluster.local', keepalive: null } });
    runtimes.push(runtime);
    const hbone = boundFd();
    await runtime.startPod(pod, sockets, { outbound: [boundFd().fd], inbound: [boundFd().fd], hbone: [hbone.fd] });
    return { runtime, hbonePort: hbone.port };
  }

  it('main thread: a certificate issued after the failure opens 15008, and the pod is served over HBONE', async () => {
    const identity = new FlakyIdentity([ca.rootPem]);
    identity.fail('CA unavailable: UNAVAILABLE: connect ECONNREFUSED');
    const { runtime, hbonePort } = await startPod(identity);
    // The SecretManager announces every issuance (the first one too) through onRotate -> identityRotated.
    identity.issue(ca.issue({ spiffeId: ECHO_ID }));
    runtime.identityRotated(ECHO_ID);
    assert.equal(await waitFor('an HBONE round trip through the late 15008', async () => roundTrip(hbonePort), 5000), 'ping');
  });

  it('worker thread: the replica announces a first issuance that follows a failure', async () => {
    const updates: string[] = [];
    let runtime: ProxyRuntime | null = null;
    const replica = new IdentityReplica((id) => {
      updates.push(id);
      runtime?.identityRotated(id);
    });
    replica.fail(ECHO_ID, 'cannot get a certificate: CA unavailable');
    const started = await startPod(replica);
    runtime = started.runtime;
    replica.update(ECHO_ID, ca.issue({ spiffeId: ECHO_ID }), [ca.rootPem]);
    assert.deepEqual(updates, [ECHO_ID]);
    assert.equal(await waitFor('an HBONE round trip through the worker\'s late 15008', async () => roundTrip(started.hbonePort), 5000), 'ping');
  });
});
