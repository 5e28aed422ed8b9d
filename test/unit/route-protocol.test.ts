// Protocol per Service port: appProtocol, then Istio's port-name convention, else detection.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { portProtocol } from '../../src/controlplane/routes/protocol';

test('appProtocol first, then the port name (exact or as the prefix before "-"), else detect', () => {
  const cases: [{ name?: string; appProtocol?: string }, string][] = [
    // appProtocol: IANA-style names and Kubernetes' own
    [{ appProtocol: 'http' }, 'http'],
    [{ appProtocol: 'HTTP' }, 'http'],
    [{ appProtocol: 'http2' }, 'http2'],
    [{ appProtocol: 'kubernetes.io/h2c' }, 'http2'],
    [{ appProtocol: 'grpc' }, 'grpc'],
    [{ appProtocol: 'grpc-web' }, 'http'],
    [{ appProtocol: 'kubernetes.io/ws' }, 'http'],
    [{ appProtocol: 'kubernetes.io/wss' }, 'tcp'],
    [{ appProtocol: 'tcp' }, 'tcp'],
    [{ appProtocol: 'https' }, 'tcp'],
    [{ appProtocol: 'tls' }, 'tcp'],
    [{ appProtocol: 'mysql' }, 'tcp'],
    // appProtocol wins over the name
    [{ name: 'http-web', appProtocol: 'tcp' }, 'tcp'],
    [{ name: 'tcp-db', appProtocol: 'grpc' }, 'grpc'],
    // an unknown appProtocol defers to the name
    [{ name: 'grpc-api', appProtocol: 'example.com/custom' }, 'grpc'],
    [{ appProtocol: 'example.com/custom' }, 'detect'],
    // port names: exact, or prefix before the first "-"
    [{ name: 'http' }, 'http'],
    [{ name: 'http-web' }, 'http'],
    [{ name: 'http2' }, 'http2'],
    [{ name: 'http2-api' }, 'http2'],
    [{ name: 'h2c-api' }, 'http2'],
    [{ name: 'grpc' }, 'grpc'],
    [{ name: 'grpc-echo' }, 'grpc'],
    [{ name: 'grpc-web' }, 'http'],
    [{ name: 'grpc-web-ui' }, 'http'],
    [{ name: 'tcp' }, 'tcp'],
    [{ name: 'tcp-db' }, 'tcp'],
    [{ name: 'https-admin' }, 'tcp'],
    [{ name: 'tls' }, 'tcp'],
    [{ name: 'redis' }, 'tcp'],
    [{ name: 'mongo-primary' }, 'tcp'],
    // no protocol in the name: detection
    [{ name: 'web' }, 'detect'],
    [{ name: 'httpx' }, 'detect'],
    [{ name: 'web-http' }, 'detect'],
    [{}, 'detect'],
  ];
  for (const [port, want] of cases) assert.equal(portProtocol(port), want, JSON.stringify(port));
});
