// A client connection as the L7 layers see it, for tests that run them without a socket: outbound, from pod `c`
// (10.0.0.1) to 10.96.0.1:80, unless `over` says otherwise.

import type { HttpConn } from '../../src/proxy/http/conn';

export function testConn(over: Partial<HttpConn> = {}): HttpConn {
  return {
    direction: 'outbound',
    pod: { uid: 'u', name: 'c', namespace: 'default', serviceAccount: 'c', ips: ['10.0.0.1'], labels: {}, annotations: {}, workloadName: 'c' },
    sockets: { newSocket: async () => null, originalDst: () => null },
    src: { ip: '10.0.0.1', port: 1 },
    dst: { ip: '10.96.0.1', port: 80 },
    service: null,
    protocol: 'http',
    principal: null,
    labels: {} as HttpConn['labels'],
    ...over,
  };
}
