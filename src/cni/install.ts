// Puts nodemesh-cni on a node and takes it off again: the plugin's files under a host directory, a launcher in the
// CNI bin dir, and one entry appended to the node's conflist (the primary network's). Removal takes out only what
// this installed: entries of type nodemesh-cni, the launcher, the host directory.

import fs from 'node:fs';
import path from 'node:path';
import { NodemeshError } from '../util/errors';

export const PLUGIN_TYPE = 'nodemesh-cni';

export class CniInstallError extends NodemeshError {
  constructor(code: 'NM_CNI_NO_CONFLIST' | 'NM_CNI_BAD_CONFLIST' | 'NM_CNI_INSTALL', message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(code, message, options);
  }
}

export interface CniInstallOptions {
  binDir: string;
  confDir: string;
  /** Directory on the host (mounted at the same path) for the plugin's runtime: node and the plugin's JS. */
  hostDir: string;
  /** Our entry in the conflist (type nodemesh-cni, enrollSocket, kubeconfig, ...). */
  entry: Record<string, unknown>;
  /** The package root whose dist/ and node_modules/ hold the plugin. */
  appRoot: string;
  nodeBinary?: string;
}

function writeAtomic(file: string, data: string | Buffer, mode: number): void {
  const tmp = `${file}.nodemesh-${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}

function copyTree(src: string, dst: string): void {
  fs.mkdirSync(dst, { recursive: true });
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, e.name);
    const d = path.join(dst, e.name);
    if (e.isDirectory()) copyTree(s, d);
    else if (e.isFile() && !e.name.endsWith('.map')) fs.copyFileSync(s, d);
  }
}

/** The conflist nodemesh-cni chains onto: the first *.conflist by name, as the runtime picks it. */
export function primaryConflist(confDir: string): string {
  let names: string[];
  try {
    names = fs.readdirSync(confDir).filter((n) => n.endsWith('.conflist')).sort();
  } catch (err) {
    throw new CniInstallError('NM_CNI_NO_CONFLIST', `cannot read the CNI config dir ${confDir}: ${(err as Error).message}`, { hint: 'set agent.cniConfDir to where the node\'s CNI configuration lives' });
  }
  if (names.length === 0) {
    throw new CniInstallError('NM_CNI_NO_CONFLIST', `no *.conflist in ${confDir}: the node's network plugin has not written its configuration (yet)`, {
      hint: 'nodemesh-cni chains onto an existing network plugin (flannel, calico, cilium, ...); install one first, or fix agent.cniConfDir',
    });
  }
  return path.join(confDir, names[0]!);
}

function readConflist(file: string): { plugins: Record<string, unknown>[]; [k: string]: unknown } {
  let conf: { plugins?: unknown };
  try {
    conf = JSON.parse(fs.readFileSync(file, 'utf8')) as { plugins?: unknown };
  } catch (err) {
    throw new CniInstallError('NM_CNI_BAD_CONFLIST', `the CNI config ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(conf.plugins)) throw new CniInstallError('NM_CNI_BAD_CONFLIST', `the CNI config ${file} has no plugins list`);
  return conf as { plugins: Record<string, unknown>[] };
}

/** Appends our entry (replacing an older one of ours); returns the file, and whether it changed. */
export function appendToConflist(confDir: string, entry: Record<string, unknown>): { file: string; changed: boolean } {
  const file = primaryConflist(confDir);
  const conf = readConflist(file);
  const others = conf.plugins.filter((p) => p.type !== PLUGIN_TYPE);
  const want = [...others, { ...entry, type: PLUGIN_TYPE }];
  if (JSON.stringify(want) === JSON.stringify(conf.plugins)) return { file, changed: false };
  writeAtomic(file, `${JSON.stringify({ ...conf, plugins: want }, null, 2)}\n`, 0o644);
  return { file, changed: true };
}

/** Removes our entries from every conflist in `confDir`; returns the files changed. */
export function removeFromConflists(confDir: string): string[] {
  const changed: string[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(confDir).filter((n) => n.endsWith('.conflist'));
  } catch {
    return changed;
  }
  for (const n of names) {
    const file = path.join(confDir, n);
    let conf;
    try {
      conf = readConflist(file);
    } catch {
      continue; // not ours to repair
    }
    const kept = conf.plugins.filter((p) => p.type !== PLUGIN_TYPE);
    if (kept.length === conf.plugins.length) continue;
    writeAtomic(file, `${JSON.stringify({ ...conf, plugins: kept }, null, 2)}\n`, 0o644);
    changed.push(file);
  }
  return changed;
}

/** The launcher the runtime executes: a shell script (every node has /bin/sh) running the plugin with our node. */
export function launcherScript(hostDir: string): string {
  return `#!/bin/sh\n# nodemesh-cni: installed by the nodemesh agent; removed when nodemesh is uninstalled.\nexec '${hostDir}/node' '${hostDir}/app/dist/src/cni/main.js' "$@"\n`;
}

/** Copies the plugin's runtime to the host, writes the launcher, appends the conflist entry. */
export function installCni(opts: CniInstallOptions): { conflist: string } {
  try {
    const app = path.join(opts.hostDir, 'app');
    fs.mkdirSync(app, { recursive: true });
    const node = opts.nodeBinary ?? process.execPath;
    const nodeDst = path.join(opts.hostDir, 'node');
    const st = fs.statSync(node);
    const dst = fs.existsSync(nodeDst) ? fs.statSync(nodeDst) : null;
    if (!dst || dst.size !== st.size) {
      fs.rmSync(`${nodeDst}.tmp`, { force: true });
      // A hard link where the host dir shares the binary's filesystem (a lab: one node binary, not one ~100 MB copy
      // per node); a copy otherwise (a DaemonSet: the binary is in the image).
      try {
        fs.linkSync(node, `${nodeDst}.tmp`);
      } catch {
        fs.copyFileSync(node, `${nodeDst}.tmp`);
        fs.chmodSync(`${nodeDst}.tmp`, 0o755);
      }
      fs.renameSync(`${nodeDst}.tmp`, nodeDst);
    }
    for (const part of ['cni', 'enroll', 'util']) copyTree(path.join(opts.appRoot, 'dist', 'src', part), path.join(app, 'dist', 'src', part));
    copyTree(path.join(opts.appRoot, 'node_modules', 'yaml'), path.join(app, 'node_modules', 'yaml'));
    fs.mkdirSync(opts.binDir, { recursive: true });
    writeAtomic(path.join(opts.binDir, PLUGIN_TYPE), launcherScript(opts.hostDir), 0o755);
  } catch (err) {
    throw new CniInstallError('NM_CNI_INSTALL', `cannot install nodemesh-cni into ${opts.binDir} / ${opts.hostDir}: ${(err as Error).message}`, { cause: err });
  }
  return { conflist: appendToConflist(opts.confDir, opts.entry).file };
}

/** Undoes installCni: conflist entries, launcher, host directory. */
export function uninstallCni(opts: Pick<CniInstallOptions, 'binDir' | 'confDir' | 'hostDir'>): string[] {
  const changed = removeFromConflists(opts.confDir);
  fs.rmSync(path.join(opts.binDir, PLUGIN_TYPE), { force: true });
  fs.rmSync(opts.hostDir, { recursive: true, force: true });
  return changed;
}

/**
 * In a cluster: a kubeconfig for the plugin (under `hostDir`, 0600) with a copy of the agent's ServiceAccount token,
 * so that with the agent down the plugin can still read whether a pod asked for fail-closed. The token is rotated by
 * the kubelet; the caller refreshes the copy periodically. Returns the kubeconfig path, or null outside a cluster.
 */
export function writePluginKubeconfig(hostDir: string, serviceAccountDir: string, env: NodeJS.ProcessEnv = process.env): string | null {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host || !fs.existsSync(path.join(serviceAccountDir, 'token'))) return null;
  fs.mkdirSync(hostDir, { recursive: true });
  const tokenFile = path.join(hostDir, 'token');
  writeAtomic(tokenFile, fs.readFileSync(path.join(serviceAccountDir, 'token')), 0o600);
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const ca = fs.readFileSync(path.join(serviceAccountDir, 'ca.crt')).toString('base64');
  const file = path.join(hostDir, 'kubeconfig');
  const kc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'local', cluster: { server, 'certificate-authority-data': ca } }],
    users: [{ name: 'nodemesh-cni', user: { tokenFile } }],
    contexts: [{ name: 'nodemesh-cni', context: { cluster: 'local', user: 'nodemesh-cni' } }],
    'current-context': 'nodemesh-cni',
  };
  writeAtomic(file, `${JSON.stringify(kc, null, 2)}\n`, 0o600);
  return file;
}
