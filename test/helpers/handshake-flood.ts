// Run inside a pod: opens many TCP connections to HOST:PORT that never finish a TLS handshake (idle, or a
// partial ClientHello), holds each until the server closes it or HOLD_MS pass, prints a JSON summary.
//
//   handshake-flood HOST PORT COUNT idle|partial|mixed HOLD_MS [PARALLEL]
//
// At most PARALLEL connects are in flight at once (default 200), so the flood is bounded in rate as well
// as in count and time; every socket is gone when it exits.

import net from 'node:net';

// A TLS record header announcing a 512-byte handshake record, and the first bytes of a ClientHello: the
// server waits for the rest of the record, which never comes.
const PARTIAL_HELLO = Buffer.from('160301020001' + '0001fc0303' + '00'.repeat(16), 'hex');

interface Summary {
  mode: string;
  attempted: number;
  opened: number;
  connectErrors: number;
  /** Closed by the server (FIN or RST) before HOLD_MS. */
  closedByServer: number;
  /** Still open when HOLD_MS passed (closed by us then). */
  heldToEnd: number;
  errors: Record<string, number>;
  ms: number;
}

async function main(): Promise<void> {
  const [host, portArg, countArg, mode, holdArg, parallelArg] = process.argv.slice(2);
  if (!host || !portArg || !countArg || !mode || !holdArg || !['idle', 'partial', 'mixed'].includes(mode)) {
    process.stderr.write('usage: handshake-flood HOST PORT COUNT idle|partial|mixed HOLD_MS [PARALLEL]\n');
    process.exit(2);
  }
  const port = Number(portArg);
  const count = Number(countArg);
  const holdMs = Number(holdArg);
  const parallel = Number(parallelArg ?? 200);
  const t0 = Date.now();
  const s: Summary = { mode, attempted: 0, opened: 0, connectErrors: 0, closedByServer: 0, heldToEnd: 0, errors: {}, ms: 0 };
  const open = new Set<net.Socket>();
  let connecting = 0;
  let wake: (() => void) | null = null;
  const settle = (): void => {
    connecting--;
    wake?.();
  };

  const one = (i: number): Promise<void> =>
    new Promise((resolve) => {
      const sock = net.connect({ host, port });
      let connected = false;
      let done = false;
      const end = (how: 'server' | 'held' | 'error'): void => {
        if (done) return;
        done = true;
        if (how === 'server') s.closedByServer++;
        else if (how === 'held') s.heldToEnd++;
        open.delete(sock);
        clearTimeout(timer);
        sock.destroy();
        resolve();
      };
      const timer = setTimeout(() => end('held'), holdMs);
      sock.on('connect', () => {
        connected = true;
        s.opened++;
        settle();
        open.add(sock);
        if (mode === 'partial' || (mode === 'mixed' && i % 2 === 1)) sock.write(PARTIAL_HELLO);
      });
      sock.on('data', () => undefined);
      sock.on('error', (e: NodeJS.ErrnoException) => {
        const code = e.code ?? e.message;
        s.errors[code] = (s.errors[code] ?? 0) + 1;
        if (!connected) {
          s.connectErrors++;
          settle();
          done = true;
          clearTimeout(timer);
          resolve();
        } else end('server');
      });
      sock.on('close', () => (connected ? end('server') : undefined));
    });

  const all: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    while (connecting >= parallel) await new Promise<void>((r) => (wake = r));
    wake = null;
    connecting++;
    s.attempted++;
    all.push(one(i));
  }
  await Promise.all(all);
  s.ms = Date.now() - t0;
  process.stdout.write(JSON.stringify(s) + '\n');
  process.exit(0);
}

void main();
