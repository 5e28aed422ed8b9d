// The handover protocol between an active agent and the one replacing it on the same node (DaemonSet
// maxSurge: 1, `nodemesh lab upgrade-agent`): newline-delimited JSON over STATE_DIR/handover.sock.
//
//   successor   -> hello      {pid, enrollSocket}   "I will take over; forward enrollment calls here"
//   predecessor -> prepared   {pid, pods}           enrollment frozen (forwarded), config flushed to disk
//          or   -> refused    {reason}              shutting down, or another handover is under way
//   successor   -> ready      {}                    it serves every pod: listeners in each SO_REUSEPORT
//                                                   group, steering pointed at its own, 15008 with certificates
//   predecessor -> committed  {}                    it stopped accepting (queues migrated), left the TCP ports
//                                                   and the datapath lock; it drains and exits on its own
//
// The connection stays open until the predecessor exits. Closed before `committed`, each side falls back on
// its own: a predecessor whose successor died resumes as the active agent; a successor whose predecessor died
// (or refused, or is absent) carries on as after an ordinary restart.

import net from 'node:net';
import type { EnrolledPod } from '../enroll/protocol';
import { NodemeshError } from '../util/errors';

export class HandoverError extends NodemeshError {}

export type HandoverMessage =
  | { type: 'hello'; pid: number; enrollSocket: string }
  | { type: 'prepared'; pid: number; pods: EnrolledPod[] }
  | { type: 'refused'; reason: string }
  | { type: 'ready' }
  | { type: 'committed' };

/** Bounded: a peer that sends a line longer than this is not an agent. */
const MAX_LINE = 16 * 1024 * 1024;

/** One end of the protocol: whole messages in, whole messages out, and one `close` however it ends. */
export class HandoverChannel {
  private buf = '';
  private readonly handlers: ((m: HandoverMessage) => void)[] = [];
  private readonly closers: ((why: string) => void)[] = [];
  private closedWhy: string | null = null;

  constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.finish(err.message));
    socket.on('close', () => this.finish('connection closed'));
  }

  get closed(): boolean {
    return this.closedWhy !== null;
  }

  send(m: HandoverMessage): void {
    if (!this.closed) this.socket.write(`${JSON.stringify(m)}\n`);
  }

  onMessage(fn: (m: HandoverMessage) => void): void {
    this.handlers.push(fn);
  }

  /** `fn` runs once, when the connection ends (at once if it already has). */
  onClose(fn: (why: string) => void): void {
    if (this.closedWhy !== null) fn(this.closedWhy);
    else this.closers.push(fn);
  }

  /** The next message of `type`; rejects if the connection ends first or `timeoutMs` passes. */
  next<T extends HandoverMessage['type']>(types: T[], timeoutMs: number): Promise<Extract<HandoverMessage, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new HandoverError('NM_HANDOVER_TIMEOUT', `no ${types.join('/')} from the other agent within ${timeoutMs} ms`)), timeoutMs);
      this.handlers.push((m) => {
        if (!(types as string[]).includes(m.type)) return;
        clearTimeout(timer);
        resolve(m as Extract<HandoverMessage, { type: T }>);
      });
      this.onClose((why) => {
        clearTimeout(timer);
        reject(new HandoverError('NM_HANDOVER_CLOSED', `the other agent went away: ${why}`));
      });
    });
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    if (this.buf.length > MAX_LINE) {
      this.finish('message too long');
      this.socket.destroy();
      return;
    }
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      let m: HandoverMessage;
      try {
        m = JSON.parse(line) as HandoverMessage;
      } catch {
        this.finish('malformed message');
        this.socket.destroy();
        return;
      }
      for (const h of [...this.handlers]) h(m);
    }
  }

  private finish(why: string): void {
    if (this.closedWhy !== null) return;
    this.closedWhy = why;
    for (const fn of this.closers.splice(0)) fn(why);
  }
}

/** What the predecessor side answers with. */
export interface PredecessorHost {
  /** Freezes enrollment (calls go to `enrollSocket` from now on) and flushes state; the pods it serves. Throws to refuse. */
  prepare(successorPid: number, enrollSocket: string): Promise<EnrolledPod[]>;
  /** The successor is ready: stop accepting everywhere, leave shared state to it. */
  commit(): Promise<void>;
  /** The successor went away before `ready`/`committed`: carry on as the active agent. */
  resume(why: string): Promise<void>;
}

/**
 * The active agent's side: serves STATE_DIR/handover-PID.sock (published as handover.sock). One handover at
 * a time; a second successor is refused while one is under way.
 */
export class HandoverServer {
  readonly server: net.Server;
  private busy = false;
  private readonly channels = new Set<HandoverChannel>();

  constructor(
    private readonly host: PredecessorHost,
    private readonly log: { info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void },
  ) {
    this.server = net.createServer((s) => this.onSuccessor(new HandoverChannel(s)));
  }

  listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(path, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  /** No more successors (this agent is leaving or has handed over). The connection to a successor stays. */
  close(): void {
    this.server.close();
  }

  /** This agent is done: the successor's connection ends too (what an exit would do). */
  destroy(): void {
    this.close();
    for (const ch of this.channels) ch.close();
  }

  private onSuccessor(ch: HandoverChannel): void {
    this.channels.add(ch);
    ch.onClose(() => this.channels.delete(ch));
    if (this.busy) {
      ch.send({ type: 'refused', reason: 'another handover is under way' });
      ch.close();
      return;
    }
    this.busy = true;
    void this.run(ch).finally(() => {
      this.busy = false;
    });
  }

  private async run(ch: HandoverChannel): Promise<void> {
    let hello: Extract<HandoverMessage, { type: 'hello' }>;
    try {
      hello = await ch.next(['hello'], 5_000);
    } catch (err) {
      ch.close();
      this.log.warn({ err }, 'a handover connection sent no hello');
      return;
    }
    let pods: EnrolledPod[];
    try {
      pods = await this.host.prepare(hello.pid, hello.enrollSocket);
    } catch (err) {
      ch.send({ type: 'refused', reason: (err as Error).message });
      ch.close();
      return;
    }
    let committed = false;
    const gone = new Promise<string>((resolve) => ch.onClose(resolve));
    ch.send({ type: 'prepared', pid: process.pid, pods });
    this.log.info({ successor: hello.pid, pods: pods.length }, 'handing over to a new agent: enrollment frozen, waiting for it to serve every pod');
    // The successor may need the control plane or the CA before it is ready: no deadline here, this agent
    // serves meanwhile. Only its going away ends the wait.
    const outcome = await Promise.race([ch.next(['ready'], 2 ** 31 - 1).then(() => 'ready' as const, () => 'gone' as const), gone.then(() => 'gone' as const)]);
    if (outcome === 'ready') {
      try {
        await this.host.commit();
        committed = true;
        ch.send({ type: 'committed' });
        this.log.info({ successor: hello.pid }, 'handed over: no longer accepting; draining open connections');
      } catch (err) {
        this.log.error({ err }, 'handover commit failed');
      }
    }
    if (!committed) {
      const why = ch.closed ? await gone : 'commit failed';
      this.log.warn({ successor: hello.pid, why }, 'the new agent went away before taking over; this agent carries on');
      ch.close();
      await this.host.resume(why);
    }
  }
}

/**
 * The successor's side: asks the agent at `publicPath` (handover.sock) to hand over. Null when there is none to
 * ask (no socket, nobody listening: a crashed or stopped agent) or it refused: then this is an ordinary start.
 */
export async function askToHandOver(
  publicPath: string,
  hello: { pid: number; enrollSocket: string },
  timeoutMs = 10_000,
): Promise<{ channel: HandoverChannel; predecessor: number; pods: EnrolledPod[] } | { refused: string } | null> {
  const socket = await new Promise<net.Socket | null>((resolve) => {
    const s = net.connect(publicPath);
    s.once('connect', () => resolve(s));
    s.once('error', () => resolve(null));
  });
  if (!socket) return null;
  const channel = new HandoverChannel(socket);
  channel.send({ type: 'hello', ...hello });
  try {
    const m = await channel.next(['prepared', 'refused'], timeoutMs);
    if (m.type === 'refused') {
      channel.close();
      return { refused: m.reason };
    }
    return { channel, predecessor: m.pid, pods: m.pods };
  } catch {
    channel.close();
    return null;
  }
}
