// `nodemesh demo`: brings up the example lab, drives traffic between its pods and shows what each agent saw.

import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import type { Command } from 'commander';
import { unixRequest } from '../enroll/client';
import { formatStatus, labDown, labStatus, labUp, readState, stderrLogger, type LabState } from '../lab';
import { labExecCapture } from '../lab/exec-capture';
import YAML from 'yaml';
import { meshConfigFile } from '../lab/controlplane';
import { adminSocket, PACKAGE_ROOT } from '../lab/paths';
import type { ClosedConnection } from '../proxy/connection-tracker';


const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

function size(n: number): string {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

/** Polls every agent's /connections and prints each connection once it closes. */
class Watcher {
  private readonly seen = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private readonly podNames = new Map<string, string>();

  constructor(
    private readonly lab: string,
    private readonly state: LabState,
  ) {
    for (const p of state.pods) this.podNames.set(p.ip, `${p.name}`);
  }

  start(): void {
    this.timer = setInterval(() => void this.poll(), 250);
  }

  async poll(): Promise<void> {
    for (const n of this.state.nodes) {
      let recent: ClosedConnection[];
      try {
        const res = await unixRequest(adminSocket(this.lab, n.name), 'GET', '/connections', undefined, 2000);
        recent = (JSON.parse(res.body) as { recent: ClosedConnection[] }).recent;
      } catch {
        continue;
      }
      const last = this.seen.get(n.name) ?? 0;
      for (const c of recent.filter((x) => x.id > last)) {
        const dstPod = this.podNames.get(c.dst.split(':')[0]!) ?? '?';
        const err = c.error ? `  error: ${c.error}` : '';
        console.log(
          `  [${n.name} agent] ${c.direction.padEnd(8)} ${c.src.padEnd(21)} -> ${c.dst.padEnd(19)} (${dstPod})  ` +
            `up ${size(c.bytesUp)}, down ${size(c.bytesDown)}, ${c.durationMs} ms, flags ${c.responseFlags}${err}`,
        );
        this.seen.set(n.name, Math.max(this.seen.get(n.name) ?? 0, c.id));
      }
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await new Promise((r) => setTimeout(r, 300));
    await this.poll();
  }
}

type Step = (title: string, pod: string, argv: string[]) => Promise<void>;

/**
 * The canary of examples/lab/basic.yaml: the calling pod's agent routes each request to the http Service:
 * `x-canary: true` to v2, the rest 90/10; then the route file is edited live to send everything to v2.
 */
async function canary(lab: string, vip: string, step: Step): Promise<void> {
  const url = `http://${vip}/`;
  const hundred = ['nodemesh', 'sample', 'client', '--url', url, '--count', '100', '--summary', '--quiet'];
  await step(`the http Service ${vip}, 100 requests on one connection: the route splits them 90/10 between v1 and v2, per request`, 'client', hundred);
  await step('the same with x-canary: true: the header rule sends all of them to v2', 'client', [...hundred.slice(0, 6), '10', '-H', 'x-canary: true', '--summary', '--quiet']);
  const file = meshConfigFile(lab);
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'));
  const route = docs.find((d) => d.get('kind') === 'HTTPRoute' && d.getIn(['metadata', 'name']) === 'http-canary');
  const split = route?.getIn(['spec', 'rules', 1, 'backendRefs']) as YAML.YAMLSeq | undefined;
  if (!route || !split || split.items.length !== 2) {
    console.log(`  (no http-canary route with a two-way split in ${file}; not editing it)`);
    return;
  }
  route.setIn(['spec', 'rules', 1, 'backendRefs', 0, 'weight'], 0);
  route.setIn(['spec', 'rules', 1, 'backendRefs', 1, 'weight'], 100);
  const shifted = docs.map((d) => d.toString()).join('---\n');
  console.log(bold(`\n== shifting all traffic to v2: editing the weights in ${file} (90/10 -> 0/100)`));
  fs.writeFileSync(file, shifted);
  // The control plane watches the file; the agents get the new route table over xDS.
  await new Promise((r) => setTimeout(r, 2000));
  await step('100 requests again: all of them to v2 now', 'client', hundred);
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('bring up examples/lab/basic.yaml, drive traffic between its pods, show what each agent saw')
    .option('-f, --file <file>', 'lab file', path.join(PACKAGE_ROOT, 'examples', 'lab', 'basic.yaml'))
    .option('--name <lab>', 'lab name', 'lab')
    .option('--keep', 'leave the lab up afterwards to explore')
    .action(async (o: { file: string; name: string; keep?: boolean }) => {
      const lab = o.name;
      console.log(bold(`\n== bringing up ${o.file} as lab "${lab}"`));
      await labDown({ lab }).catch(() => undefined);
      let ok = false;
      try {
        await labUp({ file: o.file, lab, logger: stderrLogger() });
        const state = readState(lab);

        const ip = (name: string): string => {
          const p = state.pods.find((x) => x.name === name);
          if (!p) throw new Error(`the demo expects a pod named ${name} in ${o.file}`);
          return p.ip;
        };
        const status = await labStatus(lab);
        console.log(formatStatus(status));
        const watcher = new Watcher(lab, state);
        watcher.start();
        const step = async (title: string, pod: string, argv: string[]): Promise<void> => {
          console.log(bold(`\n== ${title}`));
          console.log(`  $ nodemesh lab exec ${pod} -- ${argv.join(' ')}`);
          const r = await labExecCapture(lab, pod, argv);
          const out = (r.stdout + r.stderr).trim().split('\n').slice(-3).join('\n    ');
          console.log(`    ${out}`);
          if (r.code !== 0) throw new Error(`step "${title}" failed (exit ${r.code})`);
          await new Promise((res) => setTimeout(res, 400));
          await watcher.poll();
        };
        await step('client -> echo-a (same node): outbound on node-a, inbound on node-a', 'client', ['nodemesh', 'sample', 'pump', '--connect', `${ip('echo-a')}:9000`, '--bytes', '1048576']);
        await step('client -> echo-b (other node): 8 MiB, outbound on node-a, inbound on node-b', 'client', ['nodemesh', 'sample', 'pump', '--connect', `${ip('echo-b')}:9000`, '--bytes', String(8 << 20)]);
        await step('client -> http-b: three HTTP requests on one keep-alive connection', 'client', ['nodemesh', 'sample', 'client', '--url', `http://${ip('http-b')}:8080/hello`, '--count', '3']);
        const vip = status.services.find((v) => v.host.startsWith('http.'));
        if (vip) await canary(lab, `${vip.vip}:${vip.port}`, step);
        await step('client -> legacy (not in the mesh): only node-a\'s outbound sees it, in plaintext', 'client', ['nodemesh', 'sample', 'client', '--url', `http://${ip('legacy')}:8080/`]);
        await step('legacy -> http-a (source not in the mesh): only node-a\'s inbound sees it', 'legacy', ['nodemesh', 'sample', 'client', '--url', `http://${ip('http-a')}:8080/from-legacy`]);
        await watcher.stop();

        console.log(bold('\n== what the kernel redirected and what the agents counted (connections, and requests per route outcome)'));
        for (const n of state.nodes) {
          const res = await unixRequest(adminSocket(lab, n.name), 'GET', '/metrics');
          const lines = res.body
            .split('\n')
            .filter((l) => /^(nodemesh_redirected_connections_total|istio_tcp_connections_opened_total|istio_requests_total)\{/.test(l))
            .map((l) =>
              l.replace(/,?(source_principal|destination_principal|destination_workload_namespace|source_workload_namespace|source_app|source_version|destination_app|destination_service_name|destination_service_namespace|grpc_response_status)="[^"]*"/g, ''),
            );
          console.log(`  ${n.name}:\n    ${lines.join('\n    ') || '(nothing)'}`);
        }
        const dash = readState(lab).controlPlane?.dashboardUrl;
        if (dash) {
          console.log(bold('\n== the mesh as the dashboard shows it (nodemesh stat; the service graph, live tap and traces in the browser)'));
          const stat = spawnSync(process.execPath, [process.argv[1]!, 'stat', '--lab', lab, '--window', '120'], { encoding: 'utf8' });
          console.log(stat.stdout.replace(/^/gm, '  '));
        }
        ok = true;
      } finally {
        const dash = readState(lab).controlPlane?.dashboardUrl;
        if (o.keep && ok) {
          console.log(bold(`\n== lab "${lab}" is still up. Open the dashboard: ${dash ?? '(not served)'}  Or try:`));
          console.log(`  nodemesh top --lab ${lab}                 # services live, in the terminal`);
          console.log(`  nodemesh tap --lab ${lab} status=5xx      # failed requests as they happen`);
          console.log('  nodemesh lab status');
          console.log('  nodemesh lab exec client -- nodemesh sample client --url http://<http-b IP>:8080/');
          console.log('  nodemesh admin --node node-a /connections');
          console.log('  nodemesh admin --node node-b /metrics');
          console.log('  nodemesh lab down');
        } else {
          if (dash && ok) console.log(`\n(with --keep the lab stays up, and the dashboard at ${dash} shows its graph, tap and traces)`);
          console.log(bold(`\n== tearing lab "${lab}" down`));
          await labDown({ lab });
        }
      }
    });
}
