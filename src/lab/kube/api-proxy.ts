#!/usr/bin/env node
// The lab's API proxy: puts the API server on the lab's network. The API server listens on the host's loopback
// (where `lab up`, tests and kubectl reach it); the lab's control plane, agents and nodemesh-cni live in the lab's
// network namespaces, which see neither the host's loopback nor its interfaces, and nothing may be added to the
// host's network. So this process, in the host's namespace, opens its listening socket inside the fabric namespace
// (the addon's namespace thread, as the agent does for pods) and relays each connection, bytes only (TLS stays
// end to end), to the API server.
//
//   node api-proxy.js --netns /run/netns/NAME --listen IP:PORT --target HOST:PORT
//
// It prints one line {"listening": "IP:PORT"} once it accepts, and exits on SIGTERM or SIGINT.

import net from 'node:net';
import { loadNative } from '../../datapath/native';

interface ProxyArgs {
  netns: string;
  listenIp: string;
  listenPort: number;
  targetHost: string;
  targetPort: number;
}

function hostPort(v: string | undefined, what: string): { host: string; port: number } {
  const m = /^(.+):(\d+)$/.exec(v ?? '');
  if (!m) throw new Error(`${what} must be HOST:PORT, got ${JSON.stringify(v ?? null)}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

export function parseProxyArgs(argv: string[]): ProxyArgs {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const netns = get('--netns');
  if (!netns) throw new Error('--netns PATH is required');
  const l = hostPort(get('--listen'), '--listen');
  const t = hostPort(get('--target'), '--target');
  return { netns, listenIp: l.host, listenPort: l.port, targetHost: t.host, targetPort: t.port };
}

/** Relays one accepted connection to the target; either side closing or failing closes both. */
function relay(client: net.Socket, a: ProxyArgs): void {
  const upstream = net.connect({ host: a.targetHost, port: a.targetPort });
  const done = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', done);
  upstream.on('error', done);
  client.on('close', done);
  upstream.on('close', done);
  client.pipe(upstream);
  upstream.pipe(client);
}

export async function runApiProxy(a: ProxyArgs): Promise<net.Server> {
  const native = loadNative();
  const thread = new native.NetnsThread();
  const nsFd = native.openNetns(a.netns);
  let fd: number;
  try {
    fd = await thread.listen(nsFd, a.listenIp.includes(':') ? 6 : 4, a.listenIp, a.listenPort, 511, 0, false);
  } finally {
    native.closeFd(nsFd);
    thread.close();
  }
  const server = net.createServer({ noDelay: true }, (c) => relay(c, a));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => resolve());
  });
  return server;
}

async function main(): Promise<void> {
  const a = parseProxyArgs(process.argv.slice(2));
  const server = await runApiProxy(a);
  process.stdout.write(`${JSON.stringify({ listening: `${a.listenIp}:${a.listenPort}`, target: `${a.targetHost}:${a.targetPort}` })}\n`);
  const stop = (): void => {
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`nodemesh lab api-proxy: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
