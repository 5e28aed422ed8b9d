// One agent's xDS side for the "xDS scale" bench, in its own process: the agent's ADS client (delta) feeding the
// proxy runtime's stores exactly as the agent does (whole sets, then what changed), without a datapath, pods or worker threads. Reports over IPC:
// when its first config was complete, and when a watched cluster's endpoints reach a given port.
'use strict';

const path = require('node:path');
const { Registry } = require('prom-client');

const dist = path.join(__dirname, '..', '..', 'dist', 'src');
const { XdsClient } = require(path.join(dist, 'xds', 'ads-client'));
const { ProxyRuntime } = require(path.join(dist, 'proxy', 'runtime'));
const { silentLogger } = require(path.join(dist, 'telemetry', 'logger'));

const [address, node] = process.argv.slice(2);
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
    process.send({ type: 'synced', at: performance.timeOrigin + performance.now(), clusters: m.clusters.length });
  }
  check();
}

const client = new XdsClient(
  { address, node, mode: 'delta', log: silentLogger(), registry: new Registry(), initialBackoffMs: 100, maxBackoffMs: 1000 },
  {
    apply(typeUrl, resources) {
      runtime.applyResources(typeUrl, [...resources.values()]);
      applied();
    },
    update(typeUrl, changes) {
      runtime.updateResources(typeUrl, changes);
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
    client.close();
    process.exit(0);
  }
});
client.start();
