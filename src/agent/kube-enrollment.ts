// Enrollment in Kubernetes, the agent's side of both paths: CNI events from nodemesh-cni (the pod resolved through
// the API), and the agent's own reconcile against the API: pods of this node that the mesh takes but that are not
// enrolled (they ran before the agent) are found by IP in the node's /proc and enrolled; enrolled pods that left
// the node or the mesh are unenrolled. Reconcile acts only on a listed view: while the API is away, nothing changes.

import fs from 'node:fs';
import path from 'node:path';
import type { CniAnswer, CniEvent } from '../enroll/cni-protocol';
import { EnrollError, type EnrolledPod, type parseEnrollRequest } from '../enroll/protocol';
import type { Logger } from '../telemetry/logger';
import { wanted } from '../enroll/membership';
import { KubePodWatch, type PodInfo } from './kube-pods';
import { canonicalIp } from '../util/ip';
import { scanNetns } from './netns-finder';

type ValidRequest = ReturnType<typeof parseEnrollRequest>;

/** What kube enrollment needs from the agent. */
export interface EnrollTarget {
  enroll(req: ValidRequest): Promise<EnrolledPod>;
  unenroll(uid: string): Promise<void>;
  list(): EnrolledPod[];
}

export interface KubeEnrollmentOptions {
  node: string;
  kubeconfig?: string;
  /** The node's /proc (the agent runs with hostPID). */
  procRoot: string;
  cgroupRoot: string;
  log: Logger;
  /** Full reconcile period besides the watch events. Default 30 s. */
  resyncMs?: number;
  retryMs?: number;
}

export class KubeEnrollment {
  private watch: KubePodWatch | undefined;
  private timer: NodeJS.Timeout | undefined;
  private resync: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private closed = false;
  /** Counts for `check --proxy` and /config_dump. */
  readonly stats = { reconciles: 0, enrolledByReconcile: 0, unenrolledByReconcile: 0, cniAdds: 0, cniDels: 0, lastError: null as string | null };

  constructor(
    private readonly agent: EnrollTarget,
    private readonly opts: KubeEnrollmentOptions,
  ) {}

  async start(): Promise<void> {
    this.watch = await KubePodWatch.start({ node: this.opts.node, kubeconfig: this.opts.kubeconfig, log: this.opts.log, onChange: () => this.schedule(), retryMs: this.opts.retryMs });
    await this.reconcileNow();
    this.resync = setInterval(() => this.schedule(), this.opts.resyncMs ?? 30_000);
    this.resync.unref();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.resync) clearInterval(this.resync);
    this.watch?.close();
  }

  private schedule(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reconcileNow();
    }, 100);
  }

  private request(pod: PodInfo, netnsPath: string, cgroupPath: string, ips: string[]): ValidRequest {
    return {
      uid: pod.uid,
      name: pod.name,
      namespace: pod.namespace,
      serviceAccount: pod.serviceAccount,
      netnsPath,
      cgroupPath,
      ips,
      labels: pod.labels,
      annotations: pod.annotations,
    };
  }

  /** The pod's cgroup when the kubelet's naming (pod<uid>, with - or _) finds it, else the agent's cgroup root. */
  private podCgroup(uid: string): string {
    const want = [uid, uid.replace(/-/g, '_')];
    const walk = (dir: string, depth: number): string | null => {
      if (depth > 4) return null;
      let entries: fs.Dirent[] = [];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return null;
      }
      for (const e of entries) {
        if (!e.isDirectory()) continue;
        if (want.some((w) => e.name.includes(w))) return path.join(dir, e.name);
      }
      for (const e of entries) {
        if (!e.isDirectory() || !/pod|kube|slice|burstable|besteffort|guaranteed/.test(e.name)) continue;
        const hit = walk(path.join(dir, e.name), depth + 1);
        if (hit) return hit;
      }
      return null;
    };
    return walk(this.opts.cgroupRoot, 0) ?? this.opts.cgroupRoot;
  }

  async cni(ev: CniEvent): Promise<CniAnswer> {
    const watch = this.watch;
    if (!watch) throw new EnrollError('NM_ENROLL_NOT_READY', 503, 'the agent has not listed its pods from the API yet');
    const enrolled = this.agent.list().find((p) => (ev.uid ? p.uid === ev.uid : p.namespace === ev.namespace && p.name === ev.name));
    if (ev.command === 'DEL') {
      this.stats.cniDels++;
      if (!enrolled) return { enrolled: false, reason: 'not enrolled' };
      await this.agent.unenroll(enrolled.uid);
      return { enrolled: true };
    }
    const pod = await watch.find(ev.namespace, ev.name);
    if (!pod) throw new EnrollError('NM_ENROLL_POD_UNKNOWN', 404, `pod ${ev.namespace}/${ev.name} is not in the Kubernetes API`, { hint: 'is the runtime passing the right K8S_POD_NAMESPACE/K8S_POD_NAME?' });
    if (ev.uid && pod.uid !== ev.uid) {
      throw new EnrollError('NM_ENROLL_POD_UNKNOWN', 409, `pod ${ev.namespace}/${ev.name} has uid ${pod.uid} in the API, not ${ev.uid}`, { hint: 'the pod was deleted and recreated; the runtime will call DEL for the old sandbox' });
    }
    const w = wanted(pod, await watch.namespaceLabelsFresh(pod.namespace));
    if (ev.command === 'CHECK') {
      if (w.wanted && !enrolled) throw new EnrollError('NM_ENROLL_NOT_ENROLLED', 409, `pod ${ev.namespace}/${ev.name} should be in the mesh (${w.reason}) but is not enrolled`);
      return { enrolled: !!enrolled, reason: w.wanted ? undefined : w.reason };
    }
    this.stats.cniAdds++;
    if (!w.wanted) return { enrolled: false, reason: w.reason };
    if (enrolled && enrolled.netnsPath === ev.netnsPath) return { enrolled: true };
    if (enrolled) await this.agent.unenroll(enrolled.uid); // a new sandbox for the same pod
    await this.agent.enroll(this.request(pod, ev.netnsPath, this.podCgroup(pod.uid), ev.ips.length ? ev.ips : pod.ips));
    return { enrolled: true };
  }

  /** One pass; passes never overlap. */
  reconcileNow(): Promise<void> {
    this.running = this.running.then(() => this.reconcileOnce()).catch((err: unknown) => {
      this.stats.lastError = (err as Error).message;
      this.opts.log.warn({ err }, 'reconcile against the Kubernetes API failed; retrying at the next change');
    });
    return this.running;
  }

  private async reconcileOnce(): Promise<void> {
    const watch = this.watch;
    if (this.closed || !watch?.ready) return;
    this.stats.reconciles++;
    const pods = watch.list();
    const byUid = new Map(pods.map((p) => [p.uid, p]));
    const enrolled = this.agent.list();
    // Leave: the pod is gone from this node, or no longer in the mesh.
    for (const e of enrolled) {
      const p = byUid.get(e.uid);
      const why = !p ? 'no longer scheduled on this node' : p.deleting ? 'being deleted' : !wanted(p, watch.namespaceLabels(p.namespace)).wanted ? 'no longer in the mesh' : null;
      if (!why) continue;
      try {
        await this.agent.unenroll(e.uid);
        this.stats.unenrolledByReconcile++;
        this.opts.log.info({ pod: `${e.namespace}/${e.name}`, uid: e.uid, why }, 'pod unenrolled by reconcile');
      } catch (err) {
        this.opts.log.warn({ err, uid: e.uid }, 'unenroll by reconcile failed');
      }
    }
    // Join: wanted, running with an IP, not enrolled yet; found by IP in the node's /proc.
    const have = new Set(this.agent.list().map((e) => e.uid));
    const missing = pods.filter((p) => !have.has(p.uid) && !p.deleting && p.ips.length > 0 && p.phase === 'Running' && wanted(p, watch.namespaceLabels(p.namespace)).wanted);
    if (missing.length === 0) return;
    const found = scanNetns(this.opts.procRoot, this.opts.cgroupRoot);
    for (const p of missing) {
      const ns = p.ips.map((ip) => found.get(canonicalIp(ip))).find((x) => x !== undefined);
      const rel = ns?.cgroupPath ? path.relative(this.opts.cgroupRoot, ns.cgroupPath) : '..';
      if (!ns || rel.startsWith('..')) {
        this.opts.log.debug({ pod: `${p.namespace}/${p.name}`, ips: p.ips }, 'no process of this pod found in /proc yet');
        continue;
      }
      try {
        await this.agent.enroll(this.request(p, ns.netnsPath, ns.cgroupPath!, p.ips));
        this.stats.enrolledByReconcile++;
        this.opts.log.info({ pod: `${p.namespace}/${p.name}`, uid: p.uid, netns: ns.netnsPath }, 'pod enrolled by reconcile');
      } catch (err) {
        this.opts.log.warn({ err, pod: `${p.namespace}/${p.name}` }, 'enroll by reconcile failed');
      }
    }
  }
}
