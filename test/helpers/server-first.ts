// A server-first protocol (the server speaks first, as SMTP and MySQL do) for detection tests; run inside pods.
//
//   node server-first.js serve PORT...        greets each connection with "220 <pod> ready", answers
//                                             "250 <line>" per line, and "221 bye" (then closes) to QUIT
//   node server-first.js probe HOST PORT N    N connections one after another: how long from connected to
//                                             the greeting, and whether the dialogue works; one JSON line

import net from 'node:net';

export interface ProbeResult {
  /** Milliseconds from the connection's establishment to the first byte of the greeting, per connection. */
  greetingMs: number[];
  /** Every connection got the greeting, an answer to its line and "221 bye". */
  ok: boolean;
  errors: string[];
}

function serve(ports: number[]): void {
  const pod = process.env.POD_NAME ?? 'server-first';
  for (const port of ports) {
    net
      .createServer((s) => {
        s.on('error', () => s.destroy());
        s.write(`220 ${pod} ready\r\n`);
        let buf = '';
        s.on('data', (d: Buffer) => {
          buf += d.toString('latin1');
          let i: number;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i).replace(/\r$/, '');
            buf = buf.slice(i + 1);
            if (line === 'QUIT') return void s.end('221 bye\r\n');
            s.write(`250 ${line}\r\n`);
          }
        });
      })
      .listen(port, '0.0.0.0');
  }
  process.stdout.write(`${JSON.stringify({ msg: 'listening', ports })}\n`);
  process.once('SIGTERM', () => process.exit(0));
}

/** One dialogue: connect, time the greeting, say a line and QUIT, expect the answers. */
function dialogue(host: string, port: number): Promise<{ ms: number; error?: string }> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let t0 = 0n;
    let ms = -1;
    let text = '';
    const timer = setTimeout(() => s.destroy(new Error(`no complete dialogue within 15 s (got ${JSON.stringify(text)})`)), 15_000);
    s.once('connect', () => (t0 = process.hrtime.bigint()));
    s.on('data', (d: Buffer) => {
      if (ms < 0) {
        ms = Number(process.hrtime.bigint() - t0) / 1e6;
        s.write('HELLO there\r\nQUIT\r\n');
      }
      text += d.toString('latin1');
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      resolve({ ms, error: e.message });
    });
    s.on('close', () => {
      clearTimeout(timer);
      const good = /^220 \S+ ready\r\n250 HELLO there\r\n221 bye\r\n$/.test(text);
      resolve(good ? { ms } : { ms, error: `unexpected dialogue ${JSON.stringify(text)}` });
    });
  });
}

async function probe(host: string, port: number, n: number): Promise<void> {
  const r: ProbeResult = { greetingMs: [], ok: true, errors: [] };
  for (let i = 0; i < n; i++) {
    const d = await dialogue(host, port);
    r.greetingMs.push(Math.round(d.ms * 100) / 100);
    if (d.error) {
      r.ok = false;
      r.errors.push(d.error);
    }
  }
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

if (require.main === module) {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode === 'serve') serve(rest.map(Number));
  else if (mode === 'probe') void probe(rest[0]!, Number(rest[1]), Number(rest[2] ?? 1));
  else {
    process.stderr.write('usage: server-first.js serve PORT... | probe HOST PORT N\n');
    process.exit(2);
  }
}
