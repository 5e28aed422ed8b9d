// TLS 1.3 settings for HBONE both ways, SPIFFE ID extraction from peer certificates, TLS failure diagnosis.

import { constants } from 'node:crypto';
import type { PeerCertificate, SecureContextOptions, TLSSocket } from 'node:tls';
import type { CertBundle } from '../../identity/types';
import { HboneClientRejectedError, HboneIdentityMismatchError, HboneTlsError, errMessage } from './errors';

export const HBONE_ALPN = 'h2';
export const TLS_VERSION = 'TLSv1.3' as const;

/**
 * Key, chain and trust anchors as a secure context, pinned to TLS 1.3. The server issues no session
 * tickets: a resumed session would skip verifying the client chain (an expired certificate included).
 */
export function contextOptions(bundle: Pick<CertBundle, 'keyPem' | 'chainPem'>, roots: string[], side: 'client' | 'server'): SecureContextOptions {
  return {
    key: bundle.keyPem,
    cert: bundle.chainPem.join('\n'),
    ca: roots,
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    ...(side === 'server' ? { secureOptions: constants.SSL_OP_NO_TICKET } : {}),
  };
}

/**
 * The URI SANs of a certificate. Node renders `subjectaltname` as `URI:a, DNS:b`; values containing
 * separators are JSON-quoted (`URI:"a, b"`), so a forged SAN cannot smuggle a second entry.
 */
export function uriSans(subjectaltname: string | undefined): string[] {
  if (!subjectaltname) return [];
  const out: string[] = [];
  const re = /(?:^|, )([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)/g;
  for (let m = re.exec(subjectaltname); m !== null; m = re.exec(subjectaltname)) {
    if (m[1] !== 'URI') continue;
    const raw = m[2]!;
    out.push(raw.startsWith('"') ? (JSON.parse(raw) as string) : raw);
  }
  return out;
}

export type SpiffeIdResult = { ok: true; id: string } | { ok: false; reason: string };

/** The single SPIFFE ID of a certificate; anything other than exactly one `spiffe://` URI SAN is refused. */
export function spiffeIdOf(cert: Pick<PeerCertificate, 'subjectaltname'> | null | undefined): SpiffeIdResult {
  if (!cert || Object.keys(cert).length === 0) return { ok: false, reason: 'no certificate presented' };
  const ids = uriSans(cert.subjectaltname).filter((u) => u.startsWith('spiffe://'));
  if (ids.length === 0) return { ok: false, reason: 'certificate has no SPIFFE URI SAN' };
  if (ids.length > 1) return { ok: false, reason: `certificate has ${ids.length} SPIFFE URI SANs (${ids.join(', ')}); exactly one is required` };
  return { ok: true, id: ids[0]! };
}

// Why a client chain failed verification, from Node's `authorizationError` (OpenSSL's X509_V_ERR_* name).
const CLIENT_VERIFY_REASONS: Record<string, string> = {
  CERT_HAS_EXPIRED: 'certificate expired',
  CERT_NOT_YET_VALID: 'certificate not yet valid',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'certificate not issued by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'certificate not issued by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT: 'certificate not issued by a trusted CA',
  SELF_SIGNED_CERT_IN_CHAIN: 'certificate chain ends in an untrusted root',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed certificate',
  CERT_SIGNATURE_FAILURE: 'certificate signature does not verify',
};

/**
 * The server's verdict on a client after the handshake: its chain must have verified against the trust
 * bundle and it must carry exactly one SPIFFE ID. The reason is sent to the client, so it names no secrets.
 */
export function clientVerdict(socket: TLSSocket): SpiffeIdResult {
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return { ok: false, reason: 'no client certificate presented' };
  if (!socket.authorized) {
    const code = String(socket.authorizationError ?? 'unknown');
    return { ok: false, reason: `${CLIENT_VERIFY_REASONS[code] ?? 'certificate not trusted'} (${code})` };
  }
  return spiffeIdOf(cert);
}

/**
 * A `checkServerIdentity` that ignores the host name and requires the server's SPIFFE ID to be `expected`.
 * Node calls it only after the chain verified against the trust bundle.
 */
export function spiffeServerCheck(address: string, expected: string): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const r = spiffeIdOf(cert);
    if (!r.ok) return new HboneIdentityMismatchError(address, expected, null, r.reason);
    if (r.id !== expected) return new HboneIdentityMismatchError(address, expected, r.id);
    return undefined;
  };
}

// OpenSSL verification codes (client side, about the server's chain) and what they mean for an operator.
const VERIFY_HINTS: Record<string, string> = {
  CERT_HAS_EXPIRED: 'the server certificate has expired; check the destination agent rotates its certificates',
  CERT_NOT_YET_VALID: 'the server certificate is not valid yet; check the clocks of both nodes',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate is not signed by the mesh CA; check both agents trust the same root',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the server certificate is not signed by the mesh CA; check both agents trust the same root',
  SELF_SIGNED_CERT_IN_CHAIN: 'the server chain ends in a root this node does not trust; check the trust bundle',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server presented a self-signed certificate; check the destination agent has a mesh identity',
};

// TLS alerts the server sends when it refuses our certificate (TLS 1.3: after our side finished the handshake).
const ALERTS: Record<string, string> = {
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'certificate required (none was presented)',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: 'certificate expired',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: 'certificate issued by an unknown CA',
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: 'bad certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN: 'certificate unknown',
  ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR: 'certificate signature does not verify',
  ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE: 'unsupported certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED: 'certificate revoked',
};

/** Turns a TLS-level error seen by the client into an HBONE error that says what to check. */
export function clientTlsError(address: string, sourceId: string, err: unknown): Error {
  if (err instanceof HboneIdentityMismatchError) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code ?? '';
  const alert = ALERTS[code];
  if (alert) return new HboneClientRejectedError(address, sourceId, alert, err);
  const hint = VERIFY_HINTS[code];
  if (hint) return new HboneTlsError(address, `server certificate not trusted (${code})`, hint, err);
  if (code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL') {
    return new HboneTlsError(address, 'no common ALPN protocol', 'check the peer on 15008 speaks HBONE (ALPN h2)', err);
  }
  if (code === 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' || code === 'ERR_SSL_UNSUPPORTED_PROTOCOL') {
    return new HboneTlsError(address, 'the peer does not speak TLS 1.3', 'HBONE requires TLS 1.3 on both sides', err);
  }
  return new HboneTlsError(address, `${code ? `${code}: ` : ''}${errMessage(err)}`, 'check the destination pod runs an HBONE server on 15008', err);
}

/** A short reason for a failed server-side handshake (logs): the OpenSSL code, else the message. */
export function serverTlsReason(err: unknown): string {
  return (err as NodeJS.ErrnoException | null)?.code ?? errMessage(err);
}
