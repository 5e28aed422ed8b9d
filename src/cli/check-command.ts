// `nodemesh check --pre | --proxy`: what must hold before installing, and whether the installed mesh works.

import fs from 'node:fs';
import type { Command } from 'commander';
import { clusterPreChecks, clusterProxyChecks } from '../check/cluster-checks';
import { nodeChecks } from '../check/node-checks';
import { agentProxyChecks } from '../check/proxy-checks';
import { renderReport, type CheckResult } from '../check/report';

interface Flags {
  pre?: boolean;
  proxy?: boolean;
  kubeconfig?: string;
  namespace: string;
  cniConfDir: string;
  adminSocket: string[];
  node: boolean;
  cluster: boolean;
  json?: boolean;
}

export function registerCheckCommand(program: Command): void {
  program
    .command('check')
    .description('check a node and cluster before install (--pre), or the installed mesh (--proxy); every failure says what to fix')
    .option('--pre', 'before install: kernel, BTF, cgroup v2, bpffs, capabilities, AppArmor, CNI conflist, API and RBAC')
    .option('--proxy', 'after install: agents ready, certificates valid, xDS ACKed, enrolled pods')
    .option('--kubeconfig <file>', 'kubeconfig (default: in-cluster, then KUBECONFIG)')
    .option('--namespace <ns>', 'where nodemesh is (to be) installed', 'nodemesh-system')
    .option('--cni-conf-dir <dir>', "this node's CNI config dir", '/etc/cni/net.d')
    .option('--admin-socket <path>', 'an agent admin socket on this node for --proxy (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--no-node', 'skip the checks of this node')
    .option('--no-cluster', 'skip the checks against the API server')
    .option('--json', 'print the results as JSON')
    .action(async (o: Flags) => {
      if (!o.pre === !o.proxy) {
        process.stderr.write('nodemesh check: give --pre or --proxy\n');
        process.exit(2);
      }
      const results: CheckResult[] = [];
      if (o.pre) {
        if (o.node) results.push(...nodeChecks({ cniConfDir: o.cniConfDir }));
        if (o.cluster) results.push(...(await clusterPreChecks({ kubeconfig: o.kubeconfig, namespace: o.namespace })));
      } else {
        if (o.cluster) results.push(...(await clusterProxyChecks({ kubeconfig: o.kubeconfig, namespace: o.namespace })));
        const sockets = o.adminSocket.length ? o.adminSocket : fs.existsSync('/run/nodemesh/agent/admin.sock') ? ['/run/nodemesh/agent/admin.sock'] : [];
        if (o.node) for (const s of sockets) results.push(...(await agentProxyChecks(s)));
      }
      process.stdout.write(o.json ? `${JSON.stringify(results, null, 2)}\n` : renderReport(o.pre ? 'nodemesh check --pre' : 'nodemesh check --proxy', results));
      process.exitCode = results.some((r) => r.status === 'fail') ? 1 : 0;
    });
}
