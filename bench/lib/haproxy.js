// The `haproxy-mtls` contender: two HAProxy processes (Debian's package), one in each node's network
// namespace, forming the same two-hop shape as two agents: client pod -> haproxy A (plain TCP) ->
// mTLS (TLS 1.3 only, one cipher suite) -> haproxy B -> server pod. As many threads as the agents have
// (--threads, default 1), pinned like the agents.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { issueLeaf } = require('./certs');

/** Node/OpenSSL 3 negotiate this suite first for TLS 1.3 (HBONE leaves the default list alone). */
const CIPHERSUITE = 'TLS_AES_256_GCM_SHA384';

/**
 * Front ports on node A (plain, for the client pod) and TLS ports on node B, per service. `l7` is the
 * `haproxy-http-mtls` contender: the same two hops in `mode http` (each hop parses HTTP, as two L7 agents do).
 */
const PORTS = { http: { front: 18080, tls: 18443 }, bulk: { front: 15201, tls: 15443 }, l7: { front: 18082, tls: 18445 } };

function globalSection(name, threads) {
  return `global
  nbthread ${threads}
  maxconn 8000
  log stderr format short local0 err
  ssl-default-bind-options ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.3
  ssl-default-bind-ciphersuites ${CIPHERSUITE}
  ssl-default-server-options ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.3
  ssl-default-server-ciphersuites ${CIPHERSUITE}
  pidfile /dev/null
  # ${name}

defaults
  mode tcp
  log global
  timeout connect 5s
  timeout client 120s
  timeout server 120s
`;
}

/**
 * Writes both configs and the PEM files.
 * @param {{dir: string, caDir: string, aAddr: string, bAddr: string, serverIP: string, httpPort: number, bulkPort: number, trustDomain?: string}} o
 */
function writeConfigs(o) {
  const td = o.trustDomain || 'cluster.local';
  const client = issueLeaf(o.caDir, `spiffe://${td}/ns/default/sa/bench-client`);
  const server = issueLeaf(o.caDir, `spiffe://${td}/ns/default/sa/bench-server`);
  const f = (n) => path.join(o.dir, n);
  fs.writeFileSync(f('root.pem'), client.rootPem);
  fs.writeFileSync(f('client.pem'), client.certPem + client.keyPem, { mode: 0o600 });
  fs.writeFileSync(f('server.pem'), server.certPem + server.keyPem, { mode: 0o600 });
  const upstream = { http: o.httpPort, bulk: o.bulkPort, l7: o.httpPort };
  let a = globalSection('node A: plain in, mTLS out', o.threads || 1);
  let b = globalSection('node B: mTLS in, plain out', o.threads || 1);
  for (const [svc, p] of Object.entries(PORTS)) {
    // HTTP mode keeps connections alive on both sides of each hop, as the agents' pools do.
    const mode = svc === 'l7' ? '  mode http\n  option http-keep-alive\n' : '';
    a += `
frontend ${svc}_in
${mode}  bind ${o.aAddr}:${p.front}
  default_backend ${svc}_out
backend ${svc}_out
${mode}  server b ${o.bAddr}:${p.tls} ssl crt ${f('client.pem')} ca-file ${f('root.pem')} verify required
`;
    b += `
frontend ${svc}_in
${mode}  bind ${o.bAddr}:${p.tls} ssl crt ${f('server.pem')} ca-file ${f('root.pem')} verify required
  default_backend ${svc}_out
backend ${svc}_out
${mode}  server s ${o.serverIP}:${upstream[svc]}
`;
  }
  fs.writeFileSync(f('haproxy-a.cfg'), a);
  fs.writeFileSync(f('haproxy-b.cfg'), b);
  return { a: f('haproxy-a.cfg'), b: f('haproxy-b.cfg') };
}

/**
 * Starts haproxy in a netns, pinned to `cpus`, in the foreground (-db) as our child.
 * @returns {import('node:child_process').ChildProcess}
 */
function startHaproxy(netnsPath, cfg, cpus, logFile) {
  const out = fs.openSync(logFile, 'a');
  const child = spawn('nsenter', [`--net=${netnsPath}`, 'taskset', '-c', String(cpus), 'haproxy', '-db', '-f', cfg], {
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  return child;
}

/** nsenter and taskset exec into haproxy, so the child's pid is haproxy's; wait until it is. */
async function haproxyPid(child, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`haproxy exited with ${child.exitCode}`);
    try {
      const comm = fs.readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim();
      if (comm === 'haproxy') return child.pid;
    } catch {
      // not there yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('haproxy did not start');
}

module.exports = { writeConfigs, startHaproxy, haproxyPid, PORTS, CIPHERSUITE };
