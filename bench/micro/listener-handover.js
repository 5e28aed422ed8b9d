#!/usr/bin/env node
// What happens to connections queued on a listener (handshake done, not yet accepted) when it closes while a
// successor listener shares its SO_REUSEPORT group, as in an agent handover. Three ways, measured in a
// throwaway network namespace: nothing (the kernel's default), net.ipv4.tcp_migrate_req=1 for the whole
// netns, and the agent's sk_reuseport/migrate program attached to the group alone (bpf/reuseport.c).
//
//   node bench/micro/listener-handover.js [--conns 200] [--reps 3]     (root; after `npm run build`)
//
// Per rep and way: N clients connect to the old listener, which never accepts; a new listener joins the
// group; the old one closes; the new one accepts and echoes. A client counts as kept when its byte comes
// back, lost when it is reset or gets nothing within 3 s.
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const native = require(path.join(root, 'native', 'build', 'Release', 'nodemesh.node'));

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const CONNS = arg('conns', 200);
const REPS = arg('reps', 3);
const PORT = 15099;

async function once(thread, nsfd, nsName, way, progFd) {
  execFileSync('nsenter', [`--net=/run/netns/${nsName}`, 'sysctl', '-qw', `net.ipv4.tcp_migrate_req=${way === 'sysctl' ? 1 : 0}`]);
  const prog = way === 'program' ? progFd : undefined;
  const old = await thread.listen(nsfd, 4, '127.0.0.1', PORT, 4096, 0, false, prog);
  const clients = [];
  for (let i = 0; i < CONNS; i++) {
    const fd = await thread.socket(nsfd, 4, 0);
    const s = new net.Socket({ fd, readable: true, writable: true, manualStart: true });
    clients.push(
      new Promise((resolve) => {
        const timer = setTimeout(() => done('silent'), 3000);
        const done = (r) => {
          clearTimeout(timer);
          s.destroy();
          resolve(r);
        };
        s.on('data', () => done('kept'));
        s.on('error', (e) => done(e.code === 'ECONNRESET' ? 'reset' : e.code));
        s.connect({ host: '127.0.0.1', port: PORT }, () => s.write('x'));
      }),
    );
  }
  await new Promise((r) => setTimeout(r, 200)); // every handshake done: all sit in the old listener's queue
  const fresh = await thread.listen(nsfd, 4, '127.0.0.1', PORT, 4096, 0, false, prog);
  native.closeFd(old);
  const server = net.createServer((c) => c.on('data', (d) => c.end(d)).on('error', () => c.destroy()));
  await new Promise((r) => server.listen({ fd: fresh }, r));
  const results = await Promise.all(clients);
  await new Promise((r) => server.close(r));
  const count = (k) => results.filter((r) => r === k).length;
  return { kept: count('kept'), reset: count('reset'), silent: count('silent'), other: results.length - count('kept') - count('reset') - count('silent') };
}

async function main() {
  if (process.getuid() !== 0) throw new Error('needs root (network namespace, bpf)');
  const nsName = `nm-micro-${process.pid}`;
  const pins = `/sys/fs/bpf/nm-micro-${process.pid}`;
  execFileSync('ip', ['netns', 'add', nsName]);
  fs.mkdirSync(pins);
  const thread = new native.NetnsThread();
  let obj;
  try {
    execFileSync('ip', ['-n', nsName, 'link', 'set', 'lo', 'up']);
    obj = new native.BpfObject(path.join(root, 'bpf', 'build', 'nodemesh.bpf.o'), pins);
    const progFd = obj.programFd('nm_reuseport_migrate');
    const nsfd = native.openNetns(`/run/netns/${nsName}`);
    const rows = [];
    for (let rep = 0; rep < REPS; rep++) {
      for (const way of ['none', 'sysctl', 'program']) rows.push({ rep, way, ...(await once(thread, nsfd, nsName, way, progFd)) });
    }
    native.closeFd(nsfd);
    native.closeFd(progFd);
    console.log(`connections queued on the closing listener: ${CONNS} per run`);
    console.log('way       rep  kept  reset  silent  other');
    for (const r of rows) console.log(`${r.way.padEnd(9)} ${String(r.rep).padStart(3)} ${String(r.kept).padStart(5)} ${String(r.reset).padStart(6)} ${String(r.silent).padStart(7)} ${String(r.other).padStart(6)}`);
  } finally {
    thread.close();
    obj?.close();
    fs.rmSync(pins, { recursive: true, force: true });
    execFileSync('ip', ['netns', 'del', nsName]);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
