// e2e helpers: bring a throwaway lab up from an inline manifest, run commands in pods, read agents' admin APIs.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { unixRequest } from '../../src/enroll/client';
import { labDown, labUp, readState, type LabState } from '../../src/lab';
import { meshConfigFile } from '../../src/lab/controlplane';
import { labExecCapture } from '../../src/lab/exec-capture';
import { adminSocket } from '../../src/lab/paths';

export const PUMP_MANY = path.resolve(__dirname, 'pump-many.js');
export const SLOW_PUMP = path.resolve(__dirname, 'slow-pump.js');

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function uniqueLabName(prefix: string): string {
  return `${prefix}${process.pid.toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`.slice(0, 10);
}

/** One Pod document of a lab manifest (namespace default, one container), followed by `---`. */
export function podYaml(p: { name: string; node: string; serviceAccount: string; app: string; command: string[]; annotations?: string }): string {
  return `
apiVersion: v1
kind: Pod
metadata: { name: ${p.name}, namespace: default, labels: { app: ${p.app} }${p.annotations ? `, annotations: { ${p.annotations} }` : ''} }
spec:
  nodeName: ${p.node}
  serviceAccountName: ${p.serviceAccount}
  containers: [{ name: main, command: ${JSON.stringify(p.command)} }]
---`;
}

export async function upFromYaml(lab: string, yaml: string, opts: { agentArgs?: string[] } = {}): Promise<LabState> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-lab-'));
  const file = path.join(dir, 'lab.yaml');
  fs.writeFileSync(file, yaml);
  try {
    await labUp({ file, lab, agentArgs: opts.agentArgs });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return readState(lab);
}

export async function down(lab: string): Promise<void> {
  await labDown({ lab });
}

/** `nodemesh lab exec` through the real CLI, capturing output. */
export const execInPod = labExecCapture;

export async function admin(lab: string, node: string, p: string): Promise<string> {
  const res = await unixRequest(adminSocket(lab, node), 'GET', p);
  if (res.status !== 200) throw new Error(`admin ${node} ${p}: ${res.status} ${res.body}`);
  return res.body;
}

/** Sum of a metric's samples whose label set includes every `match` pair. */
export function metricSum(text: string, name: string, match: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (!Object.entries(match).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

export async function connections(lab: string, node: string): Promise<{ active: unknown[]; recent: { direction: string; dst: string; src: string; bytesUp: number; bytesDown: number; error: string | null }[] }> {
  return JSON.parse(await admin(lab, node, '/connections'));
}

/** Sets one label of a pod in the lab's watched config file (atomically): the control plane pushes the change. */
export function setPodLabel(lab: string, pod: string, key: string, value: string): void {
  const file = meshConfigFile(lab);
  const docs = parseAllDocuments(fs.readFileSync(file, 'utf8'));
  for (const d of docs) if (d.getIn(['kind']) === 'Pod' && d.getIn(['metadata', 'name']) === pod) d.setIn(['metadata', 'labels', key], value);
  fs.writeFileSync(`${file}.tmp`, docs.map((d) => d.toString()).join('---\n'));
  fs.renameSync(`${file}.tmp`, file);
}

export function podIP(state: LabState, name: string): string {
  const p = state.pods.find((x) => x.name === name);
  if (!p) throw new Error(`no pod ${name} in lab ${state.lab}`);
  return p.ip;
}

export { waitFor } from './wait';
