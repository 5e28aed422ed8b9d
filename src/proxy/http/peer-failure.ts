// How a destination agent tells the source agent that it could not reach its application: its own 503 for
// a reset, refused or failed connection carries `x-nodemesh-upstream-failure` (as Linkerd's proxies mark
// their errors with l5d-proxy-error). The source agent reads it back as that failure, so the retry policy
// (`reset`, `connect-failure`, `refused-stream`) and outlier detection see what happened at the far end
// rather than an application's 503, and removes it before the client sees the answer.

import type { Handler, L7Response, RequestContext } from './request';

export const UPSTREAM_FAILURE_HEADER = 'x-nodemesh-upstream-failure';

const FLAGS: Record<string, string> = { connect: 'UF', refused: 'UC', reset: 'UC' };

/** Destination side: the agent's own answer to an unreachable application says why. */
export function markFailure(next: Handler): Handler {
  return async (req, rc) => {
    const a = await next(req, rc);
    if (a.local && a.failure !== undefined && a.failure !== 'timeout') a.headers[UPSTREAM_FAILURE_HEADER] = a.failure;
    return a;
  };
}

/** Source side: a peer agent's mark (only over HBONE: a plaintext upstream cannot speak for an agent) becomes the failure. */
export function readFailure(next: Handler): Handler {
  return async (req, rc) => {
    const a = await next(req, rc);
    return fromPeer(a, rc);
  };
}

function fromPeer(a: L7Response, rc: RequestContext): L7Response {
  const v = a.headers[UPSTREAM_FAILURE_HEADER];
  if (v === undefined) return a;
  delete a.headers[UPSTREAM_FAILURE_HEADER];
  if (a.local || rc.target?.via !== 'hbone' || typeof v !== 'string' || FLAGS[v] === undefined) return a;
  if (!rc.flags.includes(FLAGS[v]!)) rc.flags.push(FLAGS[v]!);
  return { ...a, failure: v as 'connect' | 'refused' | 'reset' };
}
