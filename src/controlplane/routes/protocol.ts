// The protocol of a Service port, as Istio decides it: appProtocol, then the port name's prefix, else detection.

import type { PortProtocol } from '../../state/routes';

/**
 * Protocol names, lower case, as appProtocol values and as port-name prefixes. Everything that is not
 * plaintext HTTP the agent could parse (TLS, databases, brokers) is carried as opaque TCP.
 */
const NAMES: Record<string, PortProtocol> = {
  http: 'http',
  // gRPC-Web is HTTP/1.1 (or h2) requests with a gRPC body; the agent routes it as HTTP.
  'grpc-web': 'http',
  http2: 'http2',
  h2c: 'http2',
  grpc: 'grpc',
  tcp: 'tcp',
  tls: 'tcp',
  https: 'tcp',
  mongo: 'tcp',
  mysql: 'tcp',
  redis: 'tcp',
};

/** Kubernetes' own appProtocol values (KEP-3726), which are never port names. */
const KUBERNETES_APP_PROTOCOLS: Record<string, PortProtocol> = {
  'kubernetes.io/h2c': 'http2',
  // WebSocket starts as an HTTP/1.1 request and Upgrades; the agent parses it up to the 101.
  'kubernetes.io/ws': 'http',
  'kubernetes.io/wss': 'tcp',
};

/**
 * What the agent does with one Service port:
 * 1. `appProtocol`, when it names a protocol nodemesh knows (case-insensitive); an unknown one is ignored
 *    (it may be a vendor's name, e.g. `example.com/foo`), as Istio does;
 * 2. else the port name: a known protocol alone (`http`) or as the prefix before the first `-`
 *    (`http-web`, `grpc-api`, `tcp-db`; `grpc-web` and `grpc-web-*` are gRPC-Web);
 * 3. else `detect`: the agent sniffs the client's first bytes for a bounded time.
 */
export function portProtocol(port: { name?: string; appProtocol?: string }): PortProtocol {
  if (port.appProtocol) {
    const ap = port.appProtocol.toLowerCase();
    const known = KUBERNETES_APP_PROTOCOLS[ap] ?? NAMES[ap];
    if (known) return known;
  }
  if (port.name) {
    const name = port.name.toLowerCase();
    if (name === 'grpc-web' || name.startsWith('grpc-web-')) return 'http';
    const head = name.split('-', 1)[0]!;
    const known = NAMES[head];
    if (known) return known;
  }
  return 'detect';
}

/** True for ports the agent parses as HTTP (declared or detected): the ones routes apply to. */
export function routable(p: PortProtocol): boolean {
  return p !== 'tcp';
}
