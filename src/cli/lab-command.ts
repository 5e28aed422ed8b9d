// `nodemesh lab up|down|exec|status|upgrade-agent`: CLI front of src/lab (argument parsing and exit codes only).

import { Command } from 'commander';
import { formatStatus, labDown, labExec, labStatus, labUp, labUpKubernetes, LabError, stderrLogger, upgradeAgent } from '../lab';
import { checkLabName, DEFAULT_LAB } from '../lab/paths';
import { readState } from '../lab/state';
import { NodemeshError } from '../util/errors';

/** Prints an error the way operators read it (code + what to check) and sets a failing exit code. */
function report(e: unknown): void {
  if (e instanceof NodemeshError) process.stderr.write(`error ${e.code}: ${e.message}\n`);
  else process.stderr.write(`error: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exitCode = 1;
}

function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      report(e);
    }
  };
}

/** `--agent-command "node x.js agent"`: whitespace-split argv prefix (tests swap in a fake agent). */
function splitCommand(s: string): string[] {
  return s.split(/\s+/).filter((x) => x.length > 0);
}

export function registerLabCommand(program: Command): void {
  const lab = program
    .command('lab')
    .description('a multi-node mesh on one Linux machine: nodes and pods as network namespaces + cgroups')
    .enablePositionalOptions();

  lab
    .command('up')
    .description('create the lab described by a Kubernetes YAML file (Pods; Services etc. are kept for later)')
    .requiredOption('-f, --file <file>', 'manifest: multi-document Kubernetes YAML')
    .option('--name <lab>', 'lab name', DEFAULT_LAB)
    .option('--keep-going', 'treat pod failures (enrollment, crashing containers) as warnings', false)
    .option('--agent-command <cmd>', 'agent command prefix (default: this package\'s "nodemesh agent")')
    .option('--cli <path>', 'CLI script the pods\' "nodemesh" command runs')
    .option('--agent-arg <flag>', 'extra flag for every agent, repeatable (e.g. --agent-arg=--cert-validity=60)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--ready-timeout <ms>', 'how long to wait for each agent\'s /healthz/ready', '30000')
    .option('-v, --verbose', 'debug output', false)
    .option('--kubernetes', 'Kubernetes mode: nodes and pods registered in an API server (the lab plays the kubelet), pods wired by the reference CNI plugins with nodemesh-cni, the control plane and agents configured from the API', false)
    .option('--kubeconfig <file>', 'with --kubernetes: use this API server instead of starting the lab\'s own (the kube-apiserver scripts/kube-apiserver.sh builds)')
    .action(
      action(async (o: { file: string; name: string; keepGoing: boolean; agentCommand?: string; agentArg: string[]; cli?: string; readyTimeout: string; verbose: boolean; kubernetes: boolean; kubeconfig?: string }) => {
        if (o.kubeconfig !== undefined && !o.kubernetes) throw new LabError('NM_LAB_UP_FAILED', '--kubeconfig is for the Kubernetes mode', { hint: 'add --kubernetes' });
        // First Ctrl-C: stop between steps and tear down; a second one exits at once.
        const abort = new AbortController();
        const onSignal = (): void => {
          if (abort.signal.aborted) process.exit(130);
          process.stderr.write('lab: interrupted; removing what was created (Ctrl-C again to quit now)\n');
          abort.abort();
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        const up = o.kubernetes ? labUpKubernetes : labUp;
        const state = await up({
          kubeconfig: o.kubeconfig,
          signal: abort.signal,
          file: o.file,
          lab: o.name,
          keepGoing: o.keepGoing,
          agentCommand: o.agentCommand ? splitCommand(o.agentCommand) : undefined,
          agentArgs: o.agentArg,
          cli: o.cli,
          agentReadyTimeoutMs: Number(o.readyTimeout),
          logger: stderrLogger({ debug: o.verbose || undefined }),
        }).finally(() => {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        });
        const s = await labStatus(state.lab);
        process.stdout.write(`${formatStatus(s)}\n`);
        if (state.errors.length > 0) process.exitCode = 2;
      }),
    );

  lab
    .command('down')
    .description('remove the lab: agents (SIGTERM, then SIGKILL), pods, netns, cgroups, bpf pins, state')
    .option('--name <lab>', 'lab name', DEFAULT_LAB)
    .action(
      action(async (o: { name: string }) => {
        await labDown({ lab: o.name, logger: stderrLogger() });
      }),
    );

  lab
    .command('exec')
    .description('run a command inside a pod (its netns and cgroup); exit code propagated')
    .usage('[--name N] POD -- CMD [ARGS...]')
    .option('--name <lab>', 'lab name', DEFAULT_LAB)
    .argument('<pod>', 'pod as ns/name, or name when unique')
    .argument('<cmd...>', 'command and arguments (after "--")')
    .passThroughOptions()
    .action(async (pod: string, cmd: string[], o: { name: string }) => {
      try {
        // passThroughOptions keeps the "--" separator among the operands.
        const argv = cmd[0] === '--' ? cmd.slice(1) : cmd;
        process.exitCode = await labExec({ lab: o.name, pod, argv });
      } catch (e) {
        report(e);
        // 125 like `docker run`/`kubectl exec` wrappers: the command itself never ran.
        process.exitCode = e instanceof LabError ? 125 : 1;
      }
    });

  lab
    .command('upgrade-agent')
    .description("replace a node's agent without a restart: a new agent (this build) takes over beside the running one, which stops accepting and drains its open connections")
    .argument('<node>', 'node name')
    .option('--name <lab>', 'lab name', DEFAULT_LAB)
    .option('--ready-timeout <ms>', "how long to wait for the new agent's /healthz/ready", '60000')
    .action(
      action(async (node: string, o: { name: string; readyTimeout: string }) => {
        const r = await upgradeAgent(o.name, node, { readyTimeoutMs: Number(o.readyTimeout) });
        const from = r.previous === null ? 'no running agent: started as after a restart' : `took over from agent ${r.previous}, which drains its open connections and exits`;
        process.stdout.write(`${r.node}: agent ${r.pid} ${from}\n`);
      }),
    );

  lab
    .command('prometheus')
    .description("print the lab's Prometheus scrape configuration, or (--start) run Prometheus in the lab's fabric netns")
    .option('--name <lab>', 'lab name', DEFAULT_LAB)
    .option('--start', 'start Debian\'s prometheus for the lab (stopped by lab down)', false)
    .option('--rules <file>', 'alerting rules to load (e.g. deploy/monitoring/nodemesh-agent-rules.yaml), repeatable', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .action(
      action(async (o: { name: string; start: boolean; rules: string[] }) => {
        const { prometheusConfig, startLabPrometheus } = await import('../lab/prometheus');
        if (!o.start) {
          process.stdout.write(prometheusConfig(readState(checkLabName(o.name)), { rulesFiles: o.rules }));
          return;
        }
        const address = await startLabPrometheus(o.name, { rulesFiles: o.rules });
        process.stdout.write(`prometheus for lab "${o.name}" at http://${address} inside its fabric netns (nsenter --net=/run/netns/${readState(o.name).fabricNetns})\n`);
      }),
    );

  lab
    .command('status')
    .description('nodes, pods, IPs, enrollment, agent pids and readiness')
    .option('--name <lab>', 'lab name', DEFAULT_LAB)
    .option('--json', 'machine-readable output', false)
    .action(
      action(async (o: { name: string; json: boolean }) => {
        const s = await labStatus(o.name);
        process.stdout.write(o.json ? `${JSON.stringify(s, null, 2)}\n` : `${formatStatus(s)}\n`);
      }),
    );
}
