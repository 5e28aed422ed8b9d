// The `haproxy-mtls` contender: two HAProxy processes (Debian's package), one in each node's network
// namespace, forming the same two-hop shape as two agents: client pod -> haproxy A (plain TCP) ->
// mTLS (TLS 1.3 only, one cipher suite) -> haproxy B -> server pod. As many threads as the agents have
// (--threads, default 1), pinned like the agents. With `s6Servers`, S6's pair too: mode http, and B balances
// over the three endpoints with retries (see s6Backend).
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { issueLeaf } = require('./certs');

/** Node/OpenSSL 3 negotiate this suite first for TLS 1.3 (HBONE leaves the default list alone). */
const CIPHERSUITE = 'TLS_AES_256_GCM_SHA384';

/**
 * Front ports on node A (plain, for the client pod) and TLS ports on node B, per service. `l7` is the
 * `haproxy-http-mtls` contender: the same two hops in `mode http` (each hop parses HTTP, as two L7 agents do).
 */
const PORTS = { http: { front: 18080, tls: 18443 }, bulk: { front: 15201, tls: 15443 }, l7: { front: 18082, tls: 18445 }, s6: { front: 18084, tls: 18447 } };

/**
 * S6's balancing hop (B, beside the endpoints): least connections, up to 2 retries of a 500/502/503 or a
 * failed connect, each retry sent to another server (`option redispatch 1`: on every retry, not only the
 * last; the mesh's retries avoid the previous hosts too). No health checks or `observe`: the mesh side has
 * outlier detection, HAProxy is configured with what the scenario names.
 * @param {{name: string, ip: string}[]} servers
 */
function s6Backend(servers, port) {
  return `  balance leastconn
  retries 2
  retry-on 500 502 503 conn-failure
  option redispatch 1
${servers.map((s) => `  server ${s.name} ${s.ip}:${port}`).join('\n')}
`;
}

function globalSection(name, threads, statsSocket) {
  return `global
  nbthread ${threads}${statsSocket ? `\n  stats socket ${statsSocket} mode 600 level user` : ''}
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
 * @param {{dir: string, caDir: string, aAddr: string, bAddr: string, serverIP: string, httpPort: number, bulkPort: number, trustDomain?: string, threads?: number, s6Servers?: {name: string, ip: string}[]}} o
 */
function writeConfigs(o) {
  const td = o.trustDomain || 'cluster.local';
  const client = issueLeaf(o.caDir, `spiffe://${td}/ns/default/sa/bench-client`);
  const server = issueLeaf(o.caDir, `spiffe://${td}/ns/default/sa/bench-server`);
  const f = (n) => path.join(o.dir, n);
  fs.writeFileSync(f('root.pem'), client.rootPem);
  fs.writeFileSync(f('client.pem'), client.certPem + client.keyPem, { mode: 0o600 });
  fs.writeFileSync(f('server.pem'), server.certPem + server.keyPem, { mode: 0o600 });
  const upstream = { http: o.httpPort, bulk: o.bulkPort, l7: o.httpPort, s6: o.httpPort };
  let a = globalSection('node A: plain in, mTLS out', o.threads || 1);
  // S6 reads B's per-server response counts (the endpoints' shares) from its stats socket.
  const statsSocket = o.s6Servers && o.s6Servers.length ? f('haproxy-b.sock') : null;
  let b = globalSection('node B: mTLS in, plain out', o.threads || 1, statsSocket);
  for (const [svc, p] of Object.entries(PORTS)) {
    if (svc === 's6' && !(o.s6Servers && o.s6Servers.length)) continue;
    // HTTP mode keeps connections alive on both sides of each hop, as the agents' pools do.
    const mode = svc === 'l7' || svc === 's6' ? '  mode http\n  option http-keep-alive\n' : '';
    const servers = svc === 's6' ? s6Backend(o.s6Servers, upstream.s6) : `  server s ${o.serverIP}:${upstream[svc]}\n`;
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
${mode}${servers}`;
  }
  fs.writeFileSync(f('haproxy-a.cfg'), a);
  fs.writeFileSync(f('haproxy-b.cfg'), b);
  return { a: f('haproxy-a.cfg'), b: f('haproxy-b.cfg'), statsSocket };
}

/** `show stat` (CSV) from a stats socket. */
function showStat(sockPath, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    const s = net.connect(sockPath, () => s.end('show stat\n'));
    s.setTimeout(timeoutMs, () => s.destroy(new Error(`haproxy stats socket ${sockPath}: no answer in ${timeoutMs} ms`)));
    s.on('data', (d) => chunks.push(d));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
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

module.exports = { writeConfigs, startHaproxy, haproxyPid, showStat, PORTS, CIPHERSUITE };
