// The enrollment API server: HTTP+JSON on a unix socket, validated, answering ack or a clear error.

import type http from 'node:http';
import type { Logger } from '../telemetry/logger';
import { NodemeshError } from '../util/errors';
import { createBoundedServer, sendJson } from '../util/http';
import { parseCniEvent, type CniAnswer, type CniEvent } from './cni-protocol';
import { EnrollError, parseEnrollRequest, type EnrolledPod } from './protocol';

/** What the agent provides. Each call either fully applies or throws with nothing applied. */
export interface EnrollmentHandler {
  enroll(req: ReturnType<typeof parseEnrollRequest>): Promise<EnrolledPod>;
  unenroll(uid: string): Promise<void>;
  list(): EnrolledPod[];
  /** A CNI plugin's ADD/DEL/CHECK; only agents that know their pods from the Kubernetes API answer it. */
  cni?(ev: CniEvent): Promise<CniAnswer>;
}

export function createEnrollServer(handler: EnrollmentHandler, log: Logger): http.Server {
  return createBoundedServer((req, res, body) => {
    void route(handler, req, res, body).catch((err: unknown) => {
      const e = err instanceof EnrollError ? err : err instanceof NodemeshError ? err : null;
      const status = err instanceof EnrollError ? err.status : 500;
      const reply = { error: { code: e?.code ?? 'NM_ENROLL_INTERNAL', message: err instanceof Error ? err.message : String(err) } };
      (status >= 500 ? log.error.bind(log) : log.warn.bind(log))({ err, method: req.method, url: req.url }, 'enrollment request failed');
      sendJson(res, status, reply);
    });
  }, { name: 'enrollment', log });
}

async function route(handler: EnrollmentHandler, req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://enroll');
  const path = url.pathname;
  if (path === '/v1/pods' && req.method === 'GET') {
    sendJson(res, 200, { pods: handler.list() });
    return;
  }
  if (path === '/v1/pods' && req.method === 'POST') {
    const pod = await handler.enroll(parseEnrollRequest(body.toString('utf8')));
    sendJson(res, 200, pod);
    return;
  }
  if (path === '/v1/cni' && req.method === 'POST') {
    const ev = parseCniEvent(body.toString('utf8'));
    if (!handler.cni) {
      throw new EnrollError('NM_ENROLL_NO_POD_SOURCE', 501, 'this agent does not watch the Kubernetes API, so it cannot resolve CNI pods', {
        hint: 'start the agent with --kubernetes, or enroll with POST /v1/pods',
      });
    }
    sendJson(res, 200, await handler.cni(ev));
    return;
  }
  const m = /^\/v1\/pods\/([^/]+)$/.exec(path);
  if (m && req.method === 'DELETE') {
    await handler.unenroll(decodeURIComponent(m[1]!));
    sendJson(res, 200, { ok: true });
    return;
  }
  throw new EnrollError('NM_ENROLL_NOT_FOUND', 404, `no such endpoint: ${req.method} ${path} (use POST /v1/pods, DELETE /v1/pods/UID, GET /v1/pods)`);
}
