// nodemesh-cni on this node while the agent runs: installed at start, the conflist entry put back when the node's
// network plugin rewrites its file, and everything removed when the agent stops because nodemesh is being
// uninstalled (its DaemonSet is gone), not when it stops for an upgrade or a restart.

import { appendToConflist, installCni, uninstallCni, writePluginKubeconfig, type CniInstallOptions } from '../cni/install';
import type { Logger } from '../telemetry/logger';

export interface CniLifecycleOptions extends CniInstallOptions {
  /** Resolves true when nodemesh is being uninstalled (the agent DaemonSet is gone). */
  uninstalling?: () => Promise<boolean>;
  checkMs?: number;
  /** In a cluster: give the plugin its own kubeconfig (a copy of this ServiceAccount's token, kept fresh). */
  serviceAccountDir?: string;
}

export class CniLifecycle {
  private timer: NodeJS.Timeout | undefined;
  private conflist: string | null = null;
  private lastError: string | null = null;

  constructor(
    private readonly opts: CniLifecycleOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.tryInstall();
    this.timer = setInterval(() => this.keep(), this.opts.checkMs ?? 10_000);
    this.timer.unref();
  }

  /** The conflist entry, with the plugin's kubeconfig refreshed when there is one. */
  private entry(): Record<string, unknown> {
    if (!this.opts.serviceAccountDir) return this.opts.entry;
    const kubeconfig = writePluginKubeconfig(this.opts.hostDir, this.opts.serviceAccountDir);
    return kubeconfig ? { ...this.opts.entry, kubeconfig } : this.opts.entry;
  }

  private tryInstall(): void {
    try {
      this.conflist = installCni({ ...this.opts, entry: this.entry() }).conflist;
      this.lastError = null;
      this.log.info({ conflist: this.conflist, binDir: this.opts.binDir }, 'nodemesh-cni installed');
    } catch (err) {
      this.lastError = (err as Error).message;
      this.log.error({ err }, 'cannot install nodemesh-cni; new pods are enrolled by reconcile only until it is');
    }
  }

  private keep(): void {
    if (this.conflist === null) return this.tryInstall();
    try {
      const r = appendToConflist(this.opts.confDir, this.entry());
      if (r.changed) this.log.info({ conflist: r.file }, 'nodemesh-cni entry put back into the conflist');
      this.conflist = r.file;
      this.lastError = null;
    } catch (err) {
      this.lastError = (err as Error).message;
    }
  }

  status(): Record<string, unknown> {
    return { conflist: this.conflist, lastError: this.lastError };
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    let uninstalling = false;
    try {
      uninstalling = (await this.opts.uninstalling?.()) ?? false;
    } catch (err) {
      this.log.warn({ err }, 'cannot tell an uninstall from a restart; leaving nodemesh-cni in place');
    }
    if (!uninstalling) return;
    const changed = uninstallCni(this.opts);
    this.log.info({ conflists: changed }, 'nodemesh is being uninstalled: nodemesh-cni removed from this node');
  }
}
