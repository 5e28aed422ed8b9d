// What the active agent does when a successor asks to take over (the protocol is in handover.ts): freeze
// enrollment, serve until the successor is ready, then stop accepting and drain; or carry on if it goes away.

import type { EnrolledPod } from '../enroll/protocol';
import type { Logger } from '../telemetry/logger';
import type { PredecessorHost } from './handover';

/** The agent as a handover sees it. */
export interface HandingOverAgent {
  /** Runs `fn` in turn with enrollment calls (those in progress finish first). */
  serialized<T>(fn: () => Promise<T>): Promise<T>;
  /** Pods this agent serves now. */
  held(): Map<string, EnrolledPod>;
  /** Pods in pods.json (whoever wrote it last). */
  listed(): EnrolledPod[];
  setRole(role: 'active' | 'handing-over' | 'draining'): void;
  /** Enrollment calls go to the successor's own socket from now on (null: handled here again). */
  forwardEnrollment(to: { pid: number; enrollSocket: string } | null): void;
  /** pods.json and the xDS config on disk, now: what the successor starts from. */
  saveState(): void;
  /**
   * Stops accepting on every thread (each listener's queue moves to the successor's in the same SO_REUSEPORT
   * group; HBONE sessions get GOAWAY) and leaves the saved state, the TCP ports and the datapath lock to it.
   */
  stopAndLeave(): Promise<void>;
  /** Drains open connections up to the handover deadline, then ends the process's work. */
  drainAndExit(): Promise<void>;
  /** Points nm_config and the pods' steering back at this agent's listeners; drops what the successor registered. */
  reassertDatapath(successorPid: number): void;
  /** Serves a pod the successor had enrolled / removes one it had removed (kernel state included). */
  serve(pod: EnrolledPod): Promise<void>;
  remove(uid: string): Promise<void>;
  /** The successor removed the pod: this agent's listeners and handles go, the kernel state is not its business. */
  letGo(uid: string): void;
  /** The node's well-known socket names point at this agent again. */
  republish(): void;
}

export class Predecessor implements PredecessorHost {
  private timer: NodeJS.Timeout | null = null;
  private successorPid = 0;
  /** Set while a handover is under way; resolves when it committed or was abandoned. */
  settled: Promise<void> | null = null;
  private settle: (() => void) | null = null;

  constructor(
    private readonly agent: HandingOverAgent,
    private readonly log: Logger,
    private readonly canHandOver: () => string | null,
  ) {}

  async prepare(successorPid: number, enrollSocket: string): Promise<EnrolledPod[]> {
    const why = this.canHandOver();
    if (why !== null) throw new Error(why);
    this.agent.setRole('handing-over');
    this.successorPid = successorPid;
    this.settled = new Promise((resolve) => (this.settle = resolve));
    await this.agent.serialized(async () => this.agent.forwardEnrollment({ pid: successorPid, enrollSocket }));
    this.agent.saveState();
    this.followPodsFile();
    return [...this.agent.held().values()];
  }

  async commit(): Promise<void> {
    this.agent.setRole('draining');
    await this.agent.stopAndLeave();
    this.settle?.();
    void this.agent.drainAndExit().finally(() => this.stop());
  }

  async resume(why: string): Promise<void> {
    this.stop();
    await this.agent.serialized(async () => {
      this.agent.forwardEnrollment(null);
      this.agent.setRole('active');
      // The successor may have pointed steering and nm_config at itself, and enrolled or removed pods meanwhile.
      try {
        this.agent.reassertDatapath(this.successorPid);
      } catch (err) {
        this.log.error({ err }, 'cannot point the datapath back at this agent');
      }
      const listed = new Map(this.agent.listed().map((p) => [p.uid, p]));
      for (const uid of [...this.agent.held().keys()]) if (!listed.has(uid)) await this.agent.remove(uid);
      for (const [uid, pod] of listed) {
        if (this.agent.held().has(uid)) continue;
        await this.agent.serve(pod).catch((err: unknown) => this.log.warn({ err, uid }, 'cannot serve a pod the successor had enrolled'));
      }
      this.agent.saveState();
    });
    this.agent.republish();
    this.log.warn({ why }, 'handover abandoned; serving as before');
    this.settle?.();
  }

  /**
   * From the handover on, the successor owns pods.json: a pod it no longer lists was removed from the node, and
   * this agent lets go of it (its listeners and netns handles would keep the pod's network namespace alive).
   */
  private followPodsFile(): void {
    const check = (): void => {
      let listed: Set<string>;
      try {
        listed = new Set(this.agent.listed().map((p) => p.uid));
      } catch {
        return; // mid-replace or unreadable: next time
      }
      for (const uid of [...this.agent.held().keys()]) if (!listed.has(uid)) this.agent.letGo(uid);
    };
    this.timer = setInterval(check, 500);
    this.timer.unref();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
