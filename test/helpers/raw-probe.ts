// Run inside a pod: malformed and non-HTTP bytes to an HTTP port, each on its own connection, while one
// keep-alive connection carries good requests before, between and after them; one JSON line at the end.
//
//   node raw-probe.js HOST PORT '[{"name": "CL+TE", "bytes": "POST / HTTP/1.1\r\n..."}, ...]'
//
// `bytes` is latin1 (any byte value). For each shape: the status line of the answer (null: none), how the
// connection ended (closed by the other side, reset, or still open after 5 s), and what was received.

import http from 'node:http';
import net from 'node:net';

export interface Shape {
  name: string;
  bytes: string;
}

export interface ShapeResult {
  name: string;
  status: number | null;
  end: 'closed' | 'reset' | 'deadline';
  text: string;
}

export interface ProbeReport {
  shapes: ShapeResult[];
  /** Good requests on the one keep-alive connection: status, and whether the connection was reused. */
  keeper: { status: number | null; reused: boolean; error?: string }[];
  /** A good request on a new connection after all the shapes. */
  fresh: { status: number | null; error?: string };
}

function shape(host: string, port: number, s: Shape): Promise<ShapeResult> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let text = '';
    let done = false;
    const finish = (end: ShapeResult['end']): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ name: s.name, status: m ? Number(m[1]) : null, end, text: text.slice(0, 300) });
    };
    const timer = setTimeout(() => finish('deadline'), 5000);
    sock.on('data', (d: Buffer) => (text += d.toString('latin1')));
    sock.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : 'closed'));
    sock.on('close', () => finish('closed'));
    sock.once('connect', () => sock.write(Buffer.from(s.bytes, 'latin1')));
  });
}

function get(host: string, port: number, agent: http.Agent | false): Promise<{ status: number | null; reused: boolean; error?: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/keeper', agent, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? null, reused: req.reusedSocket }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', (e) => resolve({ status: null, reused: req.reusedSocket, error: e.message }));
  });
}

async function main(): Promise<void> {
  const [host, port, list] = process.argv.slice(2) as [string, string, string];
  const p = Number(port);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const report: ProbeReport = { shapes: [], keeper: [await get(host, p, agent)], fresh: { status: null } };
  for (const s of JSON.parse(list) as Shape[]) {
    report.shapes.push(await shape(host, p, s));
    report.keeper.push(await get(host, p, agent));
  }
  report.fresh = await get(host, p, false);
  agent.destroy();
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

if (require.main === module) void main();
