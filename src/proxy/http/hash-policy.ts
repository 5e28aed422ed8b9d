// Consistent-hash keys for a request (Istio DestinationRule consistentHash, sent as the route's
// hash_policy): a header, a cookie (set by the agent when absent, with a TTL, so the next requests stick),
// the client's address, or a query parameter. The first policy that yields a value wins.

import { randomBytes } from 'node:crypto';
import type { RoutePolicy } from '../../state/routes';
import { fnv1a } from './balancers/picker';
import { headerValue } from './headers';
import type { L7Request, RequestContext } from './request';

export interface HashResult {
  hash: number | null;
  /** A cookie to set on the response (the policy's cookie was absent). */
  setCookie: string | null;
}

function cookieValue(req: L7Request, name: string): string | undefined {
  const raw = headerValue(req.headers, 'cookie');
  if (!raw) return undefined;
  for (const part of raw.split(/;\s*/)) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq) === name) return part.slice(eq + 1);
  }
  return undefined;
}

export function requestHash(policies: RoutePolicy['hash'], req: L7Request, rc: RequestContext): HashResult {
  if (!policies || policies.length === 0) return { hash: null, setCookie: null };
  for (const p of policies) {
    switch (p.kind) {
      case 'header': {
        const v = headerValue(req.headers, p.name.toLowerCase());
        if (v !== undefined) return { hash: fnv1a(v), setCookie: null };
        break;
      }
      case 'sourceIp':
        return { hash: fnv1a(rc.conn.src.ip), setCookie: null };
      case 'query': {
        const q = req.path.indexOf('?');
        if (q >= 0) {
          const v = new URLSearchParams(req.path.slice(q + 1)).get(p.name);
          if (v !== null) return { hash: fnv1a(v), setCookie: null };
        }
        break;
      }
      case 'cookie': {
        const v = cookieValue(req, p.name);
        if (v !== undefined) return { hash: fnv1a(v), setCookie: null };
        if (p.ttlMs !== undefined && p.ttlMs > 0) {
          // Envoy: with a TTL, an absent cookie is generated and set, so the client sticks from now on.
          const value = randomBytes(8).toString('hex');
          const attrs = [`${p.name}=${value}`, `Max-Age=${Math.max(1, Math.round(p.ttlMs / 1000))}`, `Path=${p.path ?? '/'}`, 'HttpOnly'];
          return { hash: fnv1a(value), setCookie: attrs.join('; ') };
        }
        break;
      }
    }
  }
  return { hash: null, setCookie: null };
}
