// Synthetic config for the "xDS scale" scenario: N Services and P pods over namespaces and nodes, written as
// YAML files of at most FILE_OBJECTS objects each (one Service changing re-reads one small file).
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const FILE_OBJECTS = 500;

/**
 * The shape, chosen to look like a large cluster: `namespaces` namespaces, each app has two pods (one per
 * node, spread over `nodes` nodes), Services select apps round-robin (so with more Services than apps, apps
 * back several Services), every other Service is HTTP (appProtocol http) and the rest TCP, one Service in ten
 * has a second port, and clusterIPs are explicit (10.96.0.0/12, as Kubernetes allocates them).
 */
function plan({ services, pods, namespaces = 200, nodes = 100 }) {
  const apps = Math.max(1, Math.floor(pods / 2));
  return { services, pods, namespaces, nodes, apps };
}

function podIp(i) {
  // 10.64.0.0/11 and up: never a clusterIP
  return `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
}

function serviceIp(i) {
  return `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
}

function nsOf(p, app) {
  return `ns-${app % p.namespaces}`;
}

function serviceYaml(p, i, extra = '') {
  const app = i % p.apps;
  const http = i % 2 === 0;
  const second = i % 10 === 9 ? `\n  - { name: metrics, port: 9090, targetPort: 9090, appProtocol: http }` : '';
  return `apiVersion: v1
kind: Service
metadata: { name: svc-${i}, namespace: ${nsOf(p, app)} }
spec:
  clusterIP: ${serviceIp(i)}
  selector: { app: app-${app} }
  ports:
  - { name: ${http ? 'http' : 'tcp-main'}, port: 80, targetPort: 8080${http ? ', appProtocol: http' : ''}${extra} }${second}
`;
}

function podYaml(p, i) {
  const app = Math.floor(i / 2);
  return `apiVersion: v1
kind: Pod
metadata: { name: app-${app}-${i % 2}, namespace: ${nsOf(p, app)}, labels: { app: app-${app}, version: v1 } }
spec:
  nodeName: node-${i % p.nodes}
  serviceAccountName: sa-${app % 50}
  containers: [{ name: main, ports: [{ name: http, containerPort: 8080 }, { name: metrics, containerPort: 9090 }] }]
status: { podIP: ${podIp(i)}, phase: Running, conditions: [{ type: Ready, status: "True" }] }
`;
}

/** Writes the config into `dir` (created); returns the plan and the file holding Service `i`. */
function writeConfig(dir, opts) {
  const p = plan(opts);
  fs.mkdirSync(dir, { recursive: true });
  const write = (prefix, count, yaml) => {
    for (let f = 0; f * FILE_OBJECTS < count; f++) {
      const docs = [];
      for (let i = f * FILE_OBJECTS; i < Math.min(count, (f + 1) * FILE_OBJECTS); i++) docs.push(yaml(p, i));
      fs.writeFileSync(path.join(dir, `${prefix}-${String(f).padStart(4, '0')}.yaml`), docs.join('---\n'));
    }
  };
  write('pods', p.pods, podYaml);
  write('services', p.services, (pp, i) => serviceYaml(pp, i));
  return p;
}

/** Rewrites Service `i`'s file with that Service's port 80 targeting 8081 instead (a one-Service change). */
function changeService(dir, p, i, variant) {
  const f = Math.floor(i / FILE_OBJECTS);
  const docs = [];
  for (let j = f * FILE_OBJECTS; j < Math.min(p.services, (f + 1) * FILE_OBJECTS); j++) {
    docs.push(j === i ? serviceYaml(p, j).replace('targetPort: 8080', `targetPort: ${8081 + (variant % 2)}`) : serviceYaml(p, j));
  }
  fs.writeFileSync(path.join(dir, `services-${String(f).padStart(4, '0')}.yaml`), docs.join('---\n'));
}

/** Service `i` as a client finds it: namespace/name, VIP and its first port. */
function serviceRef(p, i) {
  return { name: `svc-${i}`, namespace: nsOf(p, i % p.apps), vip: serviceIp(i), port: 80, cluster: `outbound|80||svc-${i}.${nsOf(p, i % p.apps)}.svc.cluster.local` };
}

module.exports = { writeConfig, changeService, serviceRef, plan, podIp, serviceIp, FILE_OBJECTS };
