// How big an ADS message may be, on both ends, and how the control plane packs responses under that bound.

/**
 * The largest gRPC message either end of an ADS stream takes: gRPC's own default receive limit, set explicitly
 * on the control plane (send and receive) and on the agent (send and receive), so the two agree. A larger
 * message fails the stream with RESOURCE_EXHAUSTED; the control plane therefore never sends one (it packs
 * responses below XDS_RESPONSE_TARGET_BYTES and withholds, with an error, a single resource above the limit).
 * `--xds-max-message-bytes` changes it on either side; raise both or neither.
 */
export const XDS_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * Resource bytes per response before the control plane starts another one (delta, and state-of-the-world
 * EDS/RDS): a quarter of the limit, so a resource near the limit never waits behind a full response and the
 * bytes buffered per stream stay bounded, and large enough that 10,000 Services take a handful of responses
 * per type (each one a pass over the agent's tables).
 */
export const XDS_RESPONSE_TARGET_BYTES = 1024 * 1024;

/**
 * Ends a delta response's system_version_info when more responses of its type follow for the same push (a set
 * split under the message limit). The protocol has no such signal; without it a client cannot tell a complete
 * first config from the first part of one, and would report ready with half its listeners. Clients that do not
 * know it lose nothing but that.
 */
export const XDS_MORE_FOLLOWS = '+more';

/** What a response carries besides its resources (type URL, nonce, versions, control-plane id), bounded above. */
export const XDS_RESPONSE_OVERHEAD_BYTES = 4096;

/** An upper bound on the bytes one resource adds to a (delta or SotW) response: the Any, its name and version, tags. */
export function resourceEntryBytes(r: { name: string; version: string; any: { type_url: string; value: Uint8Array } }): number {
  return r.any.value.length + r.any.type_url.length + 3 * (r.name.length + r.version.length) + 32;
}

/** The smallest message limit accepted: below it, ordinary resources (a node's inbound Listener) would not fit. */
export const XDS_MIN_MESSAGE_BYTES = 256 * 1024;

/** Bytes from `4194304`, `512KiB` or `16MiB` (`--xds-max-message-bytes`); throws with what is accepted. */
export function parseMessageBytes(v: string): number {
  const m = /^(\d+)\s*(KiB|MiB)?$/.exec(v.trim());
  const n = m ? Number(m[1]) * (m[2] === 'MiB' ? 1024 * 1024 : m[2] === 'KiB' ? 1024 : 1) : NaN;
  if (!(n >= XDS_MIN_MESSAGE_BYTES && n <= 2 ** 31 - 1)) throw new Error(`must be a size from 256KiB to 2GiB: bytes, or a number with KiB or MiB (e.g. 4MiB), not "${v}"`);
  return n;
}
