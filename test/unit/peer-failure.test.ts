// A destination agent's 503 for an unreachable application carries the failure; the source agent reads it
// back (only from a peer agent over HBONE), for retries and outlier detection, and the client never sees it.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HttpConn } from '../../src/proxy/http/conn';
import { newRequestContext } from '../../src/proxy/http/exchange';
import { ISTIO_DEFAULT_RETRY, retriable, retryPolicyFor } from '../../src/proxy/http/layers/retry';
import { markFailure, readFailure, UPSTREAM_FAILURE_HEADER } from '../../src/proxy/http/peer-failure';
import { localReply, type Handler, type L7Request, type RequestContext } from '../../src/proxy/http/request';
import { testConn } from '../helpers/http-conn';

const conn = (direction: HttpConn['direction']): HttpConn => testConn({ direction, dst: { ip: '10.0.0.2', port: 80 } });

const req = (): L7Request => ({ method: 'GET', path: '/', authority: 'web:80', scheme: 'http', headers: {}, body: null, version: 'http1' });

describe('failures reported by the destination agent', () => {
  it('the destination marks its own answer to a reset, refused or failed connection; not a timeout, not the app', async () => {
    for (const failure of ['reset', 'refused', 'connect'] as const) {
      const rc = newRequestContext(conn('inbound'), {});
      const a = await markFailure(async (_r, c) => ({ ...localReply(c, 503, 'upstream reset', 'UC'), failure }))(req(), rc);
      assert.equal(a.headers[UPSTREAM_FAILURE_HEADER], failure);
    }
    const rc = newRequestContext(conn('inbound'), {});
    const timeout = await markFailure(async (_r, c) => ({ ...localReply(c, 504, 'slow', 'UT'), failure: 'timeout' }))(req(), rc);
    assert.equal(timeout.headers[UPSTREAM_FAILURE_HEADER], undefined);
    const app = await markFailure(async () => ({ status: 503, headers: {}, body: null }))(req(), rc);
    assert.equal(app.headers[UPSTREAM_FAILURE_HEADER], undefined);
  });

  it('the source reads it as the failure (flag UC or UF) from a peer over HBONE, and strips it in every case', async () => {
    const peer: Handler = async () => ({ status: 503, headers: { [UPSTREAM_FAILURE_HEADER]: 'reset', 'content-type': 'text/plain' }, body: null });
    const at = (via: 'hbone' | 'tcp'): RequestContext => {
      const rc = newRequestContext(conn('outbound'), {});
      rc.target = { ip: '10.0.0.2', port: 80, via };
      return rc;
    };
    const rc = at('hbone');
    const a = await readFailure(peer)(req(), rc);
    assert.equal(a.failure, 'reset');
    assert.deepEqual(rc.flags, ['UC']);
    assert.equal(a.headers[UPSTREAM_FAILURE_HEADER], undefined);
    // A plaintext upstream (outside the mesh) cannot speak for an agent: a 503 like any other, header removed.
    const plain = at('tcp');
    const b = await readFailure(peer)(req(), plain);
    assert.equal(b.failure, undefined);
    assert.deepEqual(plain.flags, []);
    assert.equal(b.headers[UPSTREAM_FAILURE_HEADER], undefined);
    const odd = await readFailure(async () => ({ status: 503, headers: { [UPSTREAM_FAILURE_HEADER]: 'timeout' }, body: null }))(req(), at('hbone'));
    assert.equal(odd.failure, undefined);
  });

  it('retried as the failure when the route retries resets, and as the 503 it is under the default policy', () => {
    const fromPeer = { status: 503, headers: {}, body: null, failure: 'reset' as const };
    assert.equal(retriable(fromPeer, retryPolicyFor({ retry: { attempts: 2, on: ['connect-failure', 'refused-stream', 'reset'], codes: [] } })), 'reset');
    assert.equal(retriable(fromPeer, ISTIO_DEFAULT_RETRY), 'status-503');
    // The agent's own answer to a reset is never retried as a status.
    assert.equal(retriable({ ...fromPeer, local: true }, ISTIO_DEFAULT_RETRY), null);
  });
});
