// Authorization (destination agent): PeerAuthentication and AuthorizationPolicy per request, with the
// request's method, path, host and headers for L7 rules. A denial is a 403 whose body names the reason.

import type { AuthzDecision, AuthzRequest } from '../../../state/authz';
import { headerValue } from '../headers';
import { localReply, type Layer } from '../request';

export type Authorize = (podIp: string, req: AuthzRequest) => AuthzDecision;

export function authzLayer(authorize: Authorize, onDenied: (reason: string) => void): Layer {
  return (next) => (req, rc) => {
    const c = rc.conn;
    const decision = authorize(c.dst.ip, {
      principal: c.principal,
      sourceIp: c.src.ip,
      destinationPort: c.dst.port,
      http: { method: req.method, path: req.path, host: req.authority, header: (name) => (name === 'host' ? req.authority : headerValue(req.headers, name)) },
    });
    if (decision.allowed) return next(req, rc);
    onDenied(decision.reason);
    // The body is discarded: nothing goes upstream.
    if (req.body !== null && !Buffer.isBuffer(req.body)) req.body.resume();
    return Promise.resolve(localReply(rc, 403, `RBAC: access denied: ${decision.reason}`, 'DENY'));
  };
}
