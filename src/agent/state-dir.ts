// The agent's state dir shared by two agents during a handover: each serves its unix sockets on paths of its
// own, and the well-known names (admin.sock, enroll.sock, handover.sock) are hard links that one agent at a
// time publishes; a flock says which agents may still touch the node's pinned datapath.

import fs from 'node:fs';
import path from 'node:path';
import type { NativeBinding } from '../datapath/native';
import { NodemeshError } from '../util/errors';

export class StateDirError extends NodemeshError {}

/** The well-known socket names callers use (CNI plugin, `nodemesh admin`, the next agent). */
export type PublicSocket = 'admin' | 'enroll' | 'handover';

const LOCK_FILE = 'agents.lock';
const PRIVATE_RE = /^(admin|enroll|handover)-((\d+)(?:-\d+)?)\.sock$/;

/**
 * Why private paths: libuv unlinks a unix socket's path when its server closes. An agent that listened on
 * `admin.sock` itself would, on closing, delete the socket its successor had put there. Each agent listens on
 * `NAME-PID.sock` and links the public name to it: rename() over the public name is atomic, so callers always
 * reach one agent or the other, never nothing.
 */
export class StateDir {
  private lockFd: number | null = null;

  constructor(
    readonly dir: string,
    private readonly native: Pick<NativeBinding, 'flock'> | null,
    /** Names this agent's private sockets: the pid, plus an instance number for a second agent in one process. */
    private readonly id = String(process.pid),
  ) {}

  publicPath(name: PublicSocket): string {
    return path.join(this.dir, `${name}.sock`);
  }

  privatePath(name: PublicSocket): string {
    return path.join(this.dir, `${name}-${this.id}.sock`);
  }

  /** Points the public name at this agent's socket, replacing whatever it named. */
  publish(name: PublicSocket): void {
    const tmp = path.join(this.dir, `.${name}-${this.id}.link`);
    fs.rmSync(tmp, { force: true });
    fs.linkSync(this.privatePath(name), tmp);
    fs.renameSync(tmp, this.publicPath(name));
  }

  /** Whether the public name is this agent's socket. */
  publishes(name: PublicSocket): boolean {
    try {
      return fs.statSync(this.publicPath(name)).ino === fs.statSync(this.privatePath(name)).ino;
    } catch {
      return false;
    }
  }

  /** Removes the public name if (and only if) it is still this agent's socket. */
  unpublish(name: PublicSocket): void {
    if (this.publishes(name)) fs.rmSync(this.publicPath(name), { force: true });
  }

  /** Private sockets of agents that no longer run (killed ones leave them behind). */
  removeStaleSockets(alive: (pid: number) => boolean = pidAlive): void {
    for (const f of safeReaddir(this.dir)) {
      const m = PRIVATE_RE.exec(f);
      if (m && m[2] !== this.id && !alive(Number(m[3]))) fs.rmSync(path.join(this.dir, f), { force: true });
    }
  }

  /**
   * Every agent that may still change the node's pinned datapath holds a shared lock on STATE_DIR/agents.lock: an
   * active agent, and one taking over. Waits (polling) while another agent holds it exclusively, i.e. is
   * detaching the datapath on its way out; that takes well under a second.
   */
  async lockShared(timeoutMs = 30_000): Promise<void> {
    if (!this.native || this.lockFd !== null) return;
    const fd = fs.openSync(path.join(this.dir, LOCK_FILE), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    const deadline = Date.now() + timeoutMs;
    while (!this.native.flock(fd, false)) {
      if (Date.now() > deadline) {
        fs.closeSync(fd);
        throw new StateDirError('NM_AGENT_STATE_LOCKED', `another agent has held ${path.join(this.dir, LOCK_FILE)} exclusively for ${timeoutMs} ms`, {
          hint: 'an agent detaching the datapath holds it for well under a second; is one stuck? (see its log)',
        });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    this.lockFd = fd;
  }

  /**
   * Upgrades to an exclusive lock, without waiting: true when no other agent holds the lock, i.e. this one may
   * detach and unpin the datapath. False when another agent started meanwhile: the datapath is its now.
   */
  tryLockExclusive(): boolean {
    if (!this.native || this.lockFd === null) return true;
    return this.native.flock(this.lockFd, true);
  }

  /** This agent no longer touches the pinned datapath (it handed over): the next one may detach on its way out. */
  unlock(): void {
    if (this.lockFd === null) return;
    fs.closeSync(this.lockFd);
    this.lockFd = null;
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
