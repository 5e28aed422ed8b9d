#!/usr/bin/env node
// Entry of the nodemesh-cni executable: environment + stdin in, result or CNI error JSON out (see plugin.ts).

import fs from 'node:fs';
import https from 'node:https';
import { parse as parseYaml } from 'yaml';
import { unixRequest } from '../enroll/client';
import type { CniAnswer } from '../enroll/cni-protocol';
import { AgentDownError, AgentRefusedError, runPlugin, type PluginDeps } from './plugin';

const AGENT_TIMEOUT_MS = 10_000;

async function agent(socket: string, ev: Parameters<PluginDeps['agent']>[1]): Promise<CniAnswer> {
  let res;
  try {
    res = await unixRequest(socket, 'POST', '/v1/cni', JSON.stringify(ev), AGENT_TIMEOUT_MS);
  } catch (err) {
    throw new AgentDownError(`the node agent is not answering on ${socket}: ${(err as Error).message}`);
  }
  if (res.status === 200) return JSON.parse(res.body) as CniAnswer;
  let code = 'NM_ENROLL_HTTP_ERROR';
  let message = res.body.slice(0, 300);
  try {
    const e = JSON.parse(res.body) as { error?: { code?: string; message?: string } };
    code = e.error?.code ?? code;
    message = e.error?.message ?? message;
  } catch {
    // not JSON
  }
  throw new AgentRefusedError(res.status, code, message);
}

interface KubeconfigDoc {
  clusters?: { cluster?: { server?: string; 'certificate-authority-data'?: string; 'certificate-authority'?: string; 'insecure-skip-tls-verify'?: boolean; 'tls-server-name'?: string } }[];
  users?: { user?: { token?: string; tokenFile?: string } }[];
}

/** The pod's nodemesh.io/fail-closed annotation, read with the plugin's kubeconfig; null when unknown. */
async function podFailClosed(kubeconfig: string | undefined, namespace: string, name: string): Promise<boolean | null> {
  if (!kubeconfig) return null;
  try {
    const kc = parseYaml(fs.readFileSync(kubeconfig, 'utf8')) as KubeconfigDoc;
    const cluster = kc.clusters?.[0]?.cluster;
    const user = kc.users?.[0]?.user;
    if (!cluster?.server) return null;
    const token = user?.token ?? (user?.tokenFile ? fs.readFileSync(user.tokenFile, 'utf8').trim() : undefined);
    const ca = cluster['certificate-authority-data']
      ? Buffer.from(cluster['certificate-authority-data'], 'base64')
      : cluster['certificate-authority']
        ? fs.readFileSync(cluster['certificate-authority'])
        : undefined;
    const body = await new Promise<string>((resolve, reject) => {
      const req = https.request(
        `${cluster.server}/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`,
        { ca, servername: cluster['tls-server-name'], rejectUnauthorized: cluster['insecure-skip-tls-verify'] !== true, headers: token ? { authorization: `Bearer ${token}` } : {}, timeout: 3000 },
        (res) => {
          let b = '';
          res.on('data', (c: Buffer) => (b += c.toString()));
          res.on('end', () => (res.statusCode === 200 ? resolve(b) : reject(new Error(`API answered ${res.statusCode}`))));
        },
      );
      req.on('timeout', () => req.destroy(new Error('API request timed out')));
      req.on('error', reject);
      req.end();
    });
    const pod = JSON.parse(body) as { metadata?: { annotations?: Record<string, string> } };
    return pod.metadata?.annotations?.['nodemesh.io/fail-closed'] === 'true';
  } catch (err) {
    process.stderr.write(`nodemesh-cni: cannot read pod ${namespace}/${name} from the API: ${(err as Error).message}\n`);
    return null;
  }
}

async function main(): Promise<void> {
  let stdin = '';
  try {
    stdin = fs.readFileSync(0, 'utf8');
  } catch {
    // no stdin: the decode error below says so
  }
  const out = await runPlugin(process.env, stdin, { agent, podFailClosed, log: (l) => process.stderr.write(`${l}\n`) });
  process.stdout.write(out.stdout);
  process.exitCode = out.exit;
}

void main();
