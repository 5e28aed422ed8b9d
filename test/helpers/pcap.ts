// Captures packets inside a lab netns with tcpdump and reads the pcap back (TCP payloads per flow) for assertions.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';

export interface TcpSegment {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

export class Capture {
  /** tcpdump's stderr ("N packets captured", errors), for failure messages. */
  log = '';

  private constructor(
    private readonly proc: ChildProcess,
    readonly file: string,
  ) {
    proc.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
  }

  /** Starts tcpdump on `iface` (any: all) inside netns `netnsPath`; resolves once it is capturing. */
  static async start(netnsPath: string, iface: string, file: string, filter = 'tcp'): Promise<Capture> {
    // --immediate-mode: without it packets wait in the kernel's ring buffer for up to tcpdump's 1 s buffer
    // timeout, and a capture stopped sooner than that after the traffic loses them ("N packets received by
    // filter", 0 captured).
    const proc = spawn('nsenter', [`--net=${netnsPath}`, '--', 'tcpdump', '--immediate-mode', '-i', iface, '-U', '-s', '0', '-w', file, filter], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    await new Promise<void>((resolve, reject) => {
      let err = '';
      const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), 5000);
      proc.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.includes('listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`tcpdump exited (${code}): ${err}`));
      });
    });
    // "listening on" comes as the capture opens; give the kernel a moment before traffic we must not miss.
    await new Promise((r) => setTimeout(r, 300));
    return new Capture(proc, file);
  }

  async stop(): Promise<TcpSegment[]> {
    // the last packets of the traffic just sent may still be on their way through the fabric
    await new Promise((r) => setTimeout(r, 300));
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGINT');
    await exited;
    const segs = parsePcap(fs.readFileSync(this.file));
    fs.rmSync(this.file, { force: true });
    return segs;
  }
}

/** Minimal pcap reader: Ethernet or Linux cooked (SLL) framing, IPv4, TCP. */
export function parsePcap(buf: Buffer): TcpSegment[] {
  const magic = buf.readUInt32LE(0);
  if (magic !== 0xa1b2c3d4) throw new Error(`unexpected pcap magic ${magic.toString(16)}`);
  const linktype = buf.readUInt32LE(20);
  const out: TcpSegment[] = [];
  let off = 24;
  while (off + 16 <= buf.length) {
    const incl = buf.readUInt32LE(off + 8);
    const pkt = buf.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    let ip: Buffer;
    if (linktype === 1) {
      if (pkt.readUInt16BE(12) !== 0x0800) continue;
      ip = pkt.subarray(14);
    } else if (linktype === 113) {
      if (pkt.readUInt16BE(14) !== 0x0800) continue;
      ip = pkt.subarray(16);
    } else {
      throw new Error(`unsupported pcap link type ${linktype}`);
    }
    if (ip.length < 20 || ip[9] !== 6) continue;
    const ihl = (ip[0]! & 0x0f) * 4;
    const total = ip.readUInt16BE(2);
    const tcp = ip.subarray(ihl, total);
    const doff = (tcp[12]! >> 4) * 4;
    out.push({
      src: `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`,
      dst: `${ip[16]}.${ip[17]}.${ip[18]}.${ip[19]}`,
      srcPort: tcp.readUInt16BE(0),
      dstPort: tcp.readUInt16BE(2),
      payload: Buffer.from(tcp.subarray(doff)),
    });
  }
  return out;
}
