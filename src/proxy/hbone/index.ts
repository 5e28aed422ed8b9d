// HBONE transport: mutual-TLS HTTP/2 CONNECT tunnels between pods (client pool, server, stream relay).

export { HboneClientPool, poolKey } from './client-pool';
export type { HboneClientPoolOptions, HboneClientPoolStats, HboneConnectRequest, HboneConnection, HboneSessionStats } from './client-pool';
export type { DialRequest, SocketFactory } from './dial';
export * from './errors';
export { HBONE_DETECTED_HEADER, HBONE_REASON_HEADER, formatAuthority, parseAuthority } from './protocol';
export { H2_ENGINES, h2Engine, isH2EngineName } from './h2-engine';
export type { H2Engine, H2EngineName, HboneSession, HboneStream } from './h2-engine';
export type { H2Counters } from './h2/h2-counters';
export { HboneServer } from './server';
export type { HboneConnectContext, HboneConnectHandler, HboneRespond, HboneServerOptions, HboneServerStats } from './server';
export { relayStream } from './stream-relay';
export type { RelayEnd, StreamRelay, StreamRelayHandlers } from './stream-relay';
export { spiffeIdOf, uriSans } from './tls';
