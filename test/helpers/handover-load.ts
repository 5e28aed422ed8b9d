// Run inside a pod: the workload agent upgrades must not disturb. Long-lived TCP connections exchanging a line at
// an interval, a new HTTP connection at a fixed rate, and HTTP keep-alive clients; every failure is counted
// with its first few errors. Stops when the stop file exists (or after --max-seconds), prints one JSON summary.
//
//   handover-load --long HOST:PORT [--long-count 50] [--long-interval-ms 100]
//                 --connect HOST:PORT [--connect-every-ms 10]
//                 --keepalive HOST:PORT [--keepalive-count 4]
//                 --stop-file PATH [--max-seconds 600]

import http from 'node:http';
import net from 'node:net';

interface Tally {
  ok: number;
  failed: number;
  errors: string[];
}

const tally = (): Tally => ({ ok: 0, failed: 0, errors: [] });
function fail(t: Tally, why: string): void {
  t.failed++;
  if (t.errors.length < 10) t.errors.push(`${new Date().toISOString()} ${why}`);
}

function args(): Map<string, string> {
  const m = new Map<string, string>();
  const a = process.argv.slice(2);
  for (let i = 0; i + 1 < a.length; i += 2) m.set(a[i]!.replace(/^--/, ''), a[i + 1]!);
  return m;
}

function endpoint(s: string | undefined): { host: string; port: number } | null {
  if (!s) return null;
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

const opts = args();
let stopping = false;
const long = { ...tally(), opened: 0, lines: 0 };
const connects = tally();
const keepalive = tally();
/** Client addresses the HTTP server reported (what the application saw as its peer). */
const peers = new Set<string>();

/** One long-lived connection: a numbered line every interval, each echoed back in order; ends cleanly at stop. */
function longLived(ep: { host: string; port: number }, id: number, intervalMs: number): Promise<void> {
  return new Promise((resolve) => {
    let seq = 0;
    let expect = 0;
    let buf = '';
    let done = false;
    let timer: NodeJS.Timeout | null = null;
    const finish = (why: string | null): void => {
      if (done) return;
      done = true;
      if (timer) clearInterval(timer);
      if (why === null) long.ok++;
      else fail(long, `long #${id}: ${why}`);
      s.destroy();
      resolve();
    };
    const s = net.connect({ host: ep.host, port: ep.port, allowHalfOpen: true }, () => {
      long.opened++;
      timer = setInterval(() => {
        if (stopping) {
          if (timer) clearInterval(timer);
          timer = null;
          s.end();
          return;
        }
        s.write(`${id} ${seq++}\n`);
      }, intervalMs);
    });
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line !== `${id} ${expect}`) return finish(`expected "${id} ${expect}", got "${line}"`);
        expect++;
        long.lines++;
      }
    });
    s.on('end', () => finish(stopping && expect === seq ? null : `ended by the other side after ${expect} lines (sent ${seq})`));
    s.on('error', (e) => finish(`${(e as NodeJS.ErrnoException).code ?? e.message} after ${expect} lines`));
  });
}

function get(ep: { host: string; port: number }, agent: http.Agent | false): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: ep.host, port: ep.port, path: '/', agent, timeout: 5000, headers: agent ? {} : { connection: 'close' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString()) as { peer?: { address?: string } };
          if (body.peer?.address) peers.add(body.peer.address);
        } catch {
          // not the sample server: the status is enough
        }
        resolve();
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
  });
}

async function connectLoop(ep: { host: string; port: number }, everyMs: number): Promise<void> {
  const inflight = new Set<Promise<void>>();
  while (!stopping) {
    const p = get(ep, false).then(
      () => {
        connects.ok++;
      },
      (e: NodeJS.ErrnoException) => fail(connects, e.code ?? e.message),
    );
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    await new Promise((r) => setTimeout(r, everyMs));
  }
  await Promise.all(inflight);
}

async function keepaliveLoop(ep: { host: string; port: number }): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  while (!stopping) {
    await get(ep, agent).then(
      () => {
        keepalive.ok++;
      },
      (e: NodeJS.ErrnoException) => fail(keepalive, e.code ?? e.message),
    );
    await new Promise((r) => setTimeout(r, 20));
  }
  agent.destroy();
}

async function main(): Promise<void> {
  const stopFile = opts.get('stop-file');
  const maxMs = Number(opts.get('max-seconds') ?? 600) * 1000;
  const started = Date.now();
  const fs = await import('node:fs');
  const watcher = setInterval(() => {
    if ((stopFile && fs.existsSync(stopFile)) || Date.now() - started > maxMs) stopping = true;
  }, 50);
  const work: Promise<void>[] = [];
  const l = endpoint(opts.get('long'));
  if (l) {
    const n = Number(opts.get('long-count') ?? 50);
    for (let i = 0; i < n; i++) work.push(longLived(l, i, Number(opts.get('long-interval-ms') ?? 100)));
  }
  const c = endpoint(opts.get('connect'));
  if (c) work.push(connectLoop(c, Number(opts.get('connect-every-ms') ?? 10)));
  const k = endpoint(opts.get('keepalive'));
  if (k) for (let i = 0; i < Number(opts.get('keepalive-count') ?? 4); i++) work.push(keepaliveLoop(k));
  process.stdout.write(JSON.stringify({ phase: 'started' }) + '\n');
  await Promise.all(work);
  clearInterval(watcher);
  process.stdout.write(JSON.stringify({ seconds: (Date.now() - started) / 1000, long, connects, keepalive, peers: [...peers] }) + '\n');
}

void main();
