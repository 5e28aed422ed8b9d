// One agent's xDS side for the "xDS scale" bench, in its own process: the agent's ADS client (delta) feeding the
// proxy runtime's stores exactly as the agent does (whole sets, then what changed), saving the accepted config in a
// state dir as the agent does, without a datapath, pods or worker threads (bench/lib/xds-scale-lab.js runs real
// agents). Reports over IPC: when its first config was complete, and when a watched cluster's endpoints reach a
// given port.
//
//   node xds-scale-agent.js ADDRESS NODE STATE_DIR [ROOT]   (ROOT: the nodemesh build to run, default this one)
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const [address, node, stateDir, root = path.join(__dirname, '..', '..')] = process.argv.slice(2);
const dist = path.join(root, 'dist', 'src');
const { Registry } = require(require.resolve('prom-client', { paths: [root] }));
const { XdsClient } = require(path.join(dist, 'xds', 'ads-client'));
const { ProxyRuntime } = require(path.join(dist, 'proxy', 'runtime'));
const { XdsStateFile } = require(path.join(dist, 'agent', 'xds-state-file'));
const { silentLogger } = require(path.join(dist, 'telemetry', 'logger'));
// What the agent does after a large change, in builds that do it.
const relief = fs.existsSync(path.join(dist, 'agent', 'config-relief.js'))
  ? new (require(path.join(dist, 'agent', 'config-relief')).ConfigRelief)(() => require(path.join(dist, 'datapath', 'native')).loadNative().relieveMemory(), silentLogger())
  : null;

const runtime = new ProxyRuntime({ log: silentLogger(), registry: new Registry() });
/** { cluster, port, id }: report when the cluster's endpoints are at `port`. */
let watch = null;

function check() {
  if (!watch) return;
  const eps = runtime.services.endpointsOf(watch.cluster);
  if (eps.length > 0 && eps.every((e) => e.port === watch.port)) {
    process.send({ type: 'seen', id: watch.id, at: performance.timeOrigin + performance.now() });
    watch = null;
  }
}

let synced = false;
function applied() {
  if (!synced && client.synced()) {
    synced = true;
    const m = runtime.services.snapshot();
    const cpu = process.cpuUsage(startCpu);
    process.send({ type: 'synced', at: performance.timeOrigin + performance.now(), clusters: m.clusters.length, cpuMs: (cpu.user + cpu.system) / 1000 });
  }
  check();
}

const client = new XdsClient(
  { address, node, mode: 'delta', log: silentLogger(), registry: new Registry(), initialBackoffMs: 100, maxBackoffMs: 1000, store: new XdsStateFile(stateDir) },
  {
    apply(typeUrl, resources) {
      runtime.applyResources(typeUrl, [...resources.values()]);
      relief?.committed(resources.size);
      applied();
    },
    update(typeUrl, changes) {
      runtime.updateResources(typeUrl, changes);
      relief?.committed(changes.length);
      applied();
    },
  },
);

process.on('message', (msg) => {
  if (msg.type === 'watch') {
    watch = msg;
    check();
  } else if (msg.type === 'rss') {
    global.gc?.();
    const m = process.memoryUsage();
    process.send({ type: 'rss', rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external });
  } else if (msg.type === 'stop') {
    relief?.close();
    client.close();
    process.exit(0);
  }
});
/** CPU from here to the first complete config is the sync's (module loading before it is not). */
const startCpu = process.cpuUsage();
client.start();
