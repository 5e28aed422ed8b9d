// The agent's admin endpoints: readiness, config dump, metrics, live connections, log level.

import type http from 'node:http';
import type { Agent } from '../agent/agent';
import { withEffectivePolicies } from '../proxy/http/effective-policy';
import type { Logger } from '../telemetry/logger';
import { sendJson, sendText } from '../util/http';

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

const INDEX = [
  '/healthz/ready   200 when programs are attached, enrollment is reconciled and the config is in (not while taking over or draining)',
  '/healthz/live    200 whenever the main thread answers (ready or not): for a liveness probe',
  '/config_dump     this agent (pid, handover role), enrolled pods, attached programs, map sizes, xDS resources, identities and certificates, policies, services, route tables (each route with its effective policy), L7 cluster and endpoint (outlier) state, worker threads',
  '/connections     open connections and recently closed ones (every thread), with original destinations',
  '/metrics         Prometheus metrics',
  '/logging         GET: current level; POST ?level=debug to change it',
].join('\n');

/**
 * The admin endpoints; with `only`, just those paths (the metrics and readiness ports serve one concern each,
 * and may face the network: log levels and config dumps stay on the admin socket and port).
 */
export function createAdminHandler(agent: Agent, log: Logger, only?: readonly string[]): http.RequestListener {
  const fail = (res: http.ServerResponse, err: unknown, what: string): void => {
    log.error({ err }, what);
    sendText(res, 500, `${what}: ${(err as Error).message}\n`);
  };
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (only && !only.includes(url.pathname)) {
      sendText(res, 404, `this port serves only ${only.join(', ')}\n`);
      return;
    }
    switch (url.pathname) {
      case '/':
        sendText(res, 200, INDEX + '\n');
        return;
      case '/healthz/live':
        // Not readiness: an agent waiting for the control plane, or draining, is alive and must not be
        // restarted. What this catches is a main thread that no longer runs its event loop (the worker
        // threads have their own watchdog, see workers.ts).
        sendText(res, 200, 'alive\n');
        return;
      case '/healthz/ready': {
        const reason = agent.notReadyReason();
        sendText(res, reason === null ? 200 : 503, reason === null ? 'ready\n' : `not ready: ${reason}\n`);
        return;
      }
      case '/config_dump':
        Promise.all([agent.workersStatus(), agent.l7Clusters()]).then(
          ([workers, l7Clusters]) =>
            sendJson(res, 200, {
              node: agent.opts.node,
              agent: agent.agentStatus(),
              pinRoot: agent.opts.pinRoot,
              cgroupRoot: agent.opts.cgroupRoot,
              pods: agent.list(),
              datapath: agent.datapathStatus(),
              xds: agent.xdsStatus(),
              mesh: agent.meshStatus(),
              services: agent.services.snapshot(),
              routes: withEffectivePolicies(agent.routes.all()),
              l7Clusters,
              kubernetes: agent.kubernetesStatus(),
              workers,
            }),
          (err: unknown) => fail(res, err, 'config dump failed'),
        );
        return;
      case '/connections':
        agent.connections().then(
          (c) => sendJson(res, 200, c),
          (err: unknown) => fail(res, err, 'connection listing failed'),
        );
        return;
      case '/metrics':
        agent.metricsText().then(
          (text) => sendText(res, 200, text, agent.registry.contentType),
          (err: unknown) => fail(res, err, 'metrics collection failed'),
        );
        return;
      case '/logging': {
        const level = url.searchParams.get('level');
        if (req.method === 'POST' && level !== null) {
          if (!LEVELS.has(level)) {
            sendText(res, 400, `unknown level "${level}"; use one of ${[...LEVELS].join(', ')}\n`);
            return;
          }
          agent.setLogLevel(level);
          log.info({ level }, 'log level changed');
        }
        sendJson(res, 200, { level: agent.logLevel });
        return;
      }
      default:
        sendText(res, 404, `no such admin path ${url.pathname}\n${INDEX}\n`);
    }
  };
}
