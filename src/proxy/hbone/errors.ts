// HBONE errors: one class per failure, each with a stable NM_HBONE_* code and a message that says what to check.

import { NodemeshError } from '../../util/errors';

/** `ip:port`, IPv6 in brackets. */
export function hostPort(ep: { ip: string; port: number }): string {
  return ep.ip.includes(':') ? `[${ep.ip}]:${ep.port}` : `${ep.ip}:${ep.port}`;
}

/** The caller's socket factory failed (the fd could not be made inside the source pod's netns). */
export class HboneSocketError extends NodemeshError {
  constructor(address: string, cause: unknown) {
    super('NM_HBONE_SOCKET', `cannot create a socket for HBONE to ${address}: ${errMessage(cause)}`, {
      hint: "check the source pod's network namespace still exists",
      cause,
    });
  }
}

/** TCP connect to the destination's 15008 failed or timed out. */
export class HboneConnectError extends NodemeshError {
  constructor(address: string, reason: string, cause?: unknown) {
    super('NM_HBONE_CONNECT', `TCP connect to ${address} failed: ${reason}`, {
      hint: 'check the destination pod has its HBONE listener on 15008 and no NetworkPolicy blocks port 15008',
      cause,
    });
  }
}

/** The TLS handshake failed for a reason other than the server identity check. */
export class HboneTlsError extends NodemeshError {
  constructor(address: string, reason: string, hint: string, cause?: unknown) {
    super('NM_HBONE_TLS', `TLS handshake with ${address} failed: ${reason}`, { hint, cause });
  }
}

/** The server's certificate chain verified but its SPIFFE ID is not the one expected for the destination. */
export class HboneIdentityMismatchError extends NodemeshError {
  readonly expected: string;
  readonly actual: string | null;
  constructor(address: string, expected: string, actual: string | null, detail?: string) {
    const got = detail ?? (actual === null ? 'certificate has no SPIFFE URI SAN' : `certificate SAN ${actual}`);
    super('NM_HBONE_IDENTITY_MISMATCH', `TLS handshake with ${address} failed: ${got} does not match expected ${expected}`, {
      hint: 'check the destination workload runs with the service account the mesh expects for that address',
    });
    this.expected = expected;
    this.actual = actual;
  }
}

/** The server refused our client certificate (TLS alert after the handshake, or a GOAWAY naming the reason). */
export class HboneClientRejectedError extends NodemeshError {
  constructor(address: string, sourceId: string, reason: string, cause?: unknown) {
    super('NM_HBONE_CLIENT_REJECTED', `HBONE server ${address} rejected the client certificate of ${sourceId}: ${reason}`, {
      hint: 'check the source certificate is unexpired and issued by the mesh CA the destination trusts',
      cause,
    });
  }
}

/** The server negotiated something other than HTTP/2 over ALPN. */
export class HboneProtocolError extends NodemeshError {
  constructor(address: string, reason: string, cause?: unknown) {
    super('NM_HBONE_PROTOCOL', `HBONE with ${address}: ${reason}`, {
      hint: 'check the peer on 15008 is an HBONE (HTTP/2 CONNECT over TLS 1.3) server',
      cause,
    });
  }
}

/** The HTTP/2 session or the CONNECT stream failed before the server answered. */
export class HboneSessionError extends NodemeshError {
  constructor(address: string, reason: string, cause?: unknown) {
    super('NM_HBONE_SESSION', `HBONE session with ${address} failed: ${reason}`, { cause });
  }
}

/** The dial or the CONNECT answer took longer than the configured timeout. */
export class HboneTimeoutError extends NodemeshError {
  constructor(address: string, what: string, ms: number) {
    super('NM_HBONE_TIMEOUT', `HBONE ${what} with ${address} timed out after ${ms} ms`, {
      hint: 'connection timed out, maybe a NetworkPolicy is blocking HBONE port 15008',
    });
  }
}

const STATUS_HINTS: Record<number, string> = {
  400: 'the server found the CONNECT request malformed; check the target address',
  403: "check the destination's AuthorizationPolicy admits the source identity",
  503: 'check the destination application listens on the target port',
};

/** The server answered the CONNECT with a status other than 200. */
export class HboneConnectRefusedError extends NodemeshError {
  readonly status: number;
  readonly reason: string | null;
  constructor(target: string, address: string, serverId: string, status: number, reason: string | null) {
    super('NM_HBONE_CONNECT_REFUSED', `HBONE CONNECT to ${target} via ${address} (${serverId}) answered ${status}${reason ? `: ${reason}` : ''}`, {
      hint: STATUS_HINTS[status] ?? 'see the destination agent log for this connection',
    });
    this.status = status;
    this.reason = reason;
  }
}

/** The pool (or server) is closed. */
export class HboneClosedError extends NodemeshError {
  constructor(what: string) {
    super('NM_HBONE_CLOSED', `${what} is closed`);
  }
}

/** An HTTP/2 stream was reset by the peer while relaying. */
export class HboneStreamResetError extends NodemeshError {
  readonly rstCode: number;
  constructor(rstCode: number, cause?: unknown) {
    super('NM_HBONE_STREAM_RESET', `HBONE stream reset by the peer (HTTP/2 error code ${rstCode})`, { cause });
    this.rstCode = rstCode;
  }
}

export function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
