// HBONE transport: mutual-TLS HTTP/2 CONNECT tunnels between pods (client pool, server, stream relay).

export { HboneClientPool, poolKey } from './client-pool';
export type { HboneClientPoolOptions, HboneClientPoolStats, HboneConnectRequest, HboneConnection, HboneSessionStats } from './client-pool';
export type { DialRequest, SocketFactory } from './dial';
export * from './errors';
export { HBONE_DETECTED_HEADER, HBONE_REASON_HEADER, formatAuthority, parseAuthority } from './protocol';
export { HboneServer } from './server';
export type { HboneConnectContext, HboneConnectHandler, HboneRespond, HboneServerOptions, HboneServerStats } from './server';
export { relayStream } from './stream-relay';
export type { RelayEnd, StreamRelay, StreamRelayHandlers } from './stream-relay';
export { spiffeIdOf, uriSans } from './tls';
