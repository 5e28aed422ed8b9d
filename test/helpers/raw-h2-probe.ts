// Run inside a pod: malformed HTTP/2 (prior knowledge) to an HTTP port, each shape on its own connection,
// while one HTTP/2 session carries good requests before, between and after them; one JSON line at the end.
//
//   node raw-h2-probe.js HOST PORT SHAPE...      (SHAPE: a name from SHAPES below)
//
// For each shape: the frames that came back (type, stream, error code, GOAWAY debug text), HTTP/1.x text if
// the bytes were not taken for HTTP/2, and how the connection ended: closed, reset, a verdict (GOAWAY, or a
// RST_STREAM or an answer on the last stream the shape opened: the probe closes then), or still open after 5 s.

import http2 from 'node:http2';
import net from 'node:net';

export interface FrameSeen {
  type: string;
  stream: number;
  /** RST_STREAM and GOAWAY: the error code's name. */
  error?: string;
  /** GOAWAY's debug data. */
  debug?: string;
  /** HEADERS: the frame's flags. */
  flags?: number;
}

export interface H2ShapeResult {
  name: string;
  frames: FrameSeen[];
  /** What came back when it was not HTTP/2 (an HTTP/1.1 answer). */
  text: string;
  end: 'closed' | 'reset' | 'deadline' | 'verdict';
  /** Bytes this side managed to write before the other side closed. */
  written: number;
}

export interface H2ProbeReport {
  shapes: H2ShapeResult[];
  /** Good requests on the one HTTP/2 session. */
  keeper: { status: number | null; error?: string }[];
  /** A good request on a new session after all the shapes. */
  fresh: { status: number | null; error?: string };
}

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const TYPES = ['DATA', 'HEADERS', 'PRIORITY', 'RST_STREAM', 'SETTINGS', 'PUSH_PROMISE', 'PING', 'GOAWAY', 'WINDOW_UPDATE', 'CONTINUATION'];
const ERRORS = ['NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED'];
export const END_STREAM = 0x1;
export const END_HEADERS = 0x4;

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK integer with an N-bit prefix. */
function hpackInt(value: number, prefixBits: number, first: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) | 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

const str = (s: string): Buffer => Buffer.concat([hpackInt(Buffer.byteLength(s, 'latin1'), 7, 0), Buffer.from(s, 'latin1')]);
/** A literal field without indexing, new name (no Huffman). */
export const literal = (name: string, value: string): Buffer => Buffer.concat([Buffer.from([0]), str(name), str(value)]);
/** A literal without indexing whose name is static table entry `index`. */
const literalIndexed = (index: number, value: string): Buffer => Buffer.concat([hpackInt(index, 4, 0), str(value)]);

/** :method GET, :path /h2-bad, :scheme http, :authority host (static indices 2, 4, 6, 1). */
function getHead(host: string, extra: Buffer[] = [], opts: { path?: boolean; method?: string } = {}): Buffer {
  const method = opts.method ? literalIndexed(2, opts.method) : Buffer.from([0x82]);
  return Buffer.concat([method, ...(opts.path === false ? [] : [literalIndexed(4, '/h2-bad')]), Buffer.from([0x86]), literalIndexed(1, host), ...extra]);
}

const SETTINGS = frame(4, 0, 0, Buffer.alloc(0));

/** Bytes after the preface and an empty SETTINGS, per shape. */
export const SHAPES: Record<string, (host: string) => Buffer[]> = {
  'uppercase header name': (host) => [frame(1, END_STREAM | END_HEADERS, 1, getHead(host, [literal('X-Upper', '1')]))],
  'connection-specific header': (host) => [frame(1, END_STREAM | END_HEADERS, 1, getHead(host, [literal('connection', 'keep-alive')]))],
  'no :path': (host) => [frame(1, END_STREAM | END_HEADERS, 1, getHead(host, [], { path: false }))],
  'content-length not matching DATA': (host) => [frame(1, END_HEADERS, 1, getHead(host, [literal('content-length', '10')], { method: 'POST' })), frame(0, END_STREAM, 1, Buffer.from('abc'))],
  'frame over SETTINGS_MAX_FRAME_SIZE': (host) => [frame(1, END_HEADERS, 1, getHead(host)), frame(0, END_STREAM, 1, Buffer.alloc(20_000, 0x61))],
  'HPACK index out of range': () => [frame(1, END_STREAM | END_HEADERS, 1, Buffer.from([0xff, 0x80, 0x20]))],
  'DATA on stream 0': () => [frame(0, 0, 0, Buffer.from('hello'))],
  'even stream id from a client': (host) => [frame(1, END_STREAM | END_HEADERS, 2, getHead(host))],
  // A header block that never ends, 1.9 MB of CONTINUATION (the 2024 CONTINUATION-flood shape).
  'endless CONTINUATION': (host) => [frame(1, 0, 1, getHead(host)), ...Array.from({ length: 128 }, () => frame(9, 0, 1, Buffer.concat(Array.from({ length: 400 }, (_, i) => literal(`x-f${i % 10}`, 'v'.repeat(30))))))],
  // Streams opened and reset at once, 1,000 of them (the 2023 rapid-reset shape).
  // Then one good request: its answer says whether the connection still serves.
  'rapid reset': (host) => [
    ...Array.from({ length: 1000 }, (_, i) => Buffer.concat([frame(1, END_STREAM | END_HEADERS, 2 * i + 1, getHead(host)), frame(3, 0, 2 * i + 1, Buffer.from([0, 0, 0, 8]))])),
    frame(1, END_STREAM | END_HEADERS, 2001, getHead(host)),
  ],
  'broken preface': () => [],
};

function parseFrames(buf: Buffer, out: FrameSeen[]): number {
  let off = 0;
  while (buf.length - off >= 9) {
    const len = buf.readUIntBE(off, 3);
    if (buf.length - off < 9 + len) break;
    const type = buf[off + 3]!;
    const stream = buf.readUInt32BE(off + 5) & 0x7fffffff;
    const p = buf.subarray(off + 9, off + 9 + len);
    const f: FrameSeen = { type: TYPES[type] ?? `type ${type}`, stream };
    if (type === 3) f.error = ERRORS[p.readUInt32BE(0)] ?? String(p.readUInt32BE(0));
    if (type === 7) {
      f.error = ERRORS[p.readUInt32BE(4)] ?? String(p.readUInt32BE(4));
      f.debug = p.subarray(8).toString('latin1').slice(0, 200);
    }
    if (type === 1) f.flags = buf[off + 4]!;
    // Acknowledgements and window updates say nothing about the verdict.
    if (type !== 8 && type !== 4 && type !== 6) out.push(f);
    off += 9 + len;
  }
  return off;
}

function shape(host: string, port: number, name: string): Promise<H2ShapeResult> {
  const make = SHAPES[name];
  if (!make) throw new Error(`no shape "${name}" (known: ${Object.keys(SHAPES).join(', ')})`);
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const frames: FrameSeen[] = [];
    const lastStream = name === 'rapid reset' ? 2001 : 1;
    let raw = Buffer.alloc(0);
    let h2 = true;
    let written = 0;
    let done = false;
    const finish = (end: H2ShapeResult['end']): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ name, frames: frames.filter((f) => f.type !== 'DATA').slice(-20), text: h2 ? '' : raw.toString('latin1').slice(0, 300), end, written });
    };
    const timer = setTimeout(() => finish('deadline'), 5000);
    sock.on('data', (d: Buffer) => {
      raw = Buffer.concat([raw, d]);
      if (!h2) return;
      if (raw.subarray(0, 5).toString('latin1') === 'HTTP/') {
        h2 = false;
        return;
      }
      raw = raw.subarray(parseFrames(raw, frames));
      if (frames.some((f) => f.type === 'GOAWAY' || ((f.type === 'RST_STREAM' || f.type === 'HEADERS') && f.stream === lastStream))) finish('verdict');
    });
    sock.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : 'closed'));
    sock.on('close', () => finish('closed'));
    sock.once('connect', () => {
      const parts = name === 'broken preface' ? [Buffer.from('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n', 'latin1')] : [PREFACE, SETTINGS, ...make(host)];
      // Written one after another, so that a peer that gives up midway stops the rest.
      const next = (i: number): void => {
        if (i >= parts.length || sock.destroyed) return;
        const ok = sock.write(parts[i]!, (err) => {
          if (!err) written += parts[i]!.length;
        });
        if (ok) setImmediate(() => next(i + 1));
        else sock.once('drain', () => next(i + 1));
      };
      next(0);
    });
  });
}

function get(session: http2.ClientHttp2Session): Promise<{ status: number | null; error?: string }> {
  return new Promise((resolve) => {
    if (session.destroyed || session.closed) return resolve({ status: null, error: 'the session is gone' });
    const req = session.request({ ':path': '/keeper' });
    let status: number | null = null;
    req.setTimeout(10_000, () => req.close(http2.constants.NGHTTP2_CANCEL));
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('error', (e) => resolve({ status, error: e.message }));
    req.on('close', () => resolve({ status }));
    req.resume();
    req.end();
  });
}

async function main(): Promise<void> {
  const [host, port, ...names] = process.argv.slice(2) as [string, string, ...string[]];
  const origin = `http://${host}:${port}`;
  const keeperSession = http2.connect(origin);
  let keeperGone = '';
  keeperSession.on('error', (e) => (keeperGone = e.message));
  keeperSession.on('goaway', (code) => (keeperGone = `GOAWAY ${ERRORS[code] ?? code}`));
  const keep = async (): Promise<H2ProbeReport['keeper'][number]> => {
    const r = await get(keeperSession);
    return { ...r, ...(keeperGone ? { error: `${r.error ?? ''} (${keeperGone})` } : {}) };
  };
  const report: H2ProbeReport = { shapes: [], keeper: [await keep()], fresh: { status: null } };
  for (const n of names) {
    report.shapes.push(await shape(host, Number(port), n));
    report.keeper.push(await keep());
  }
  const fresh = http2.connect(origin);
  fresh.on('error', () => undefined);
  report.fresh = await get(fresh);
  fresh.close();
  keeperSession.close();
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

if (require.main === module) void main();
