// Gateway API's mesh (GAMMA) conformance scenarios, and the Gateway profile's header and method matching,
// rebuilt as black-box tests in the lab: a client pod on node-a calls Services whose endpoints are on both
// nodes, so requests cross nodes over HBONE mTLS; each answer is checked for the backend that served it,
// the request the backend saw (path, headers) and what the client got (status, headers, Location).
// Ends with an invalid edit of a route: file:line:field, Accepted=False, the last good version served.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LineCounter, parseAllDocuments, type Scalar } from 'yaml';
import type { LabState } from '../../src/lab';
import { meshConfigFile } from '../../src/lab/controlplane';
import { DEFAULT_CLI, netnsPath } from '../../src/lab/paths';
import { CONSUMER_NS, MANIFEST, NS, VIP } from '../fixtures/gamma-lab';
import type { EchoCallAnswer } from '../helpers/grpc-echo-call';
import type { BatchAnswer, BatchRequest } from '../helpers/http-batch';
import { down, execInPod, isRoot, podIP, uniqueLabName, upFromYaml, waitFor } from '../helpers/lab';

const HTTP_BATCH = path.resolve(__dirname, '../helpers/http-batch.js');
const GRPC_CALL = path.resolve(__dirname, '../helpers/grpc-echo-call.js');

/** One request and what must come of it. Absent expectations are not checked; `status` defaults to 200. */
interface Case {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  status?: number;
  /** The pod that served it (the sample http server's report). */
  backend?: string;
  /** Path (and query) the backend saw. */
  seenPath?: string;
  /** Request headers as the backend saw them, and headers it must not have seen. */
  seen?: Record<string, string>;
  unseen?: string[];
  /** Response headers the client got, and ones it must not have got. */
  got?: Record<string, string>;
  notGot?: string[];
  location?: string;
}

interface SampleReport {
  pod: string;
  path: string;
  headers: Record<string, string>;
}

/** Runs a command to its end: exit code and output, never a rejection. */
function runCommand(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

const url = (vip: string, p = '/', port?: number): string => `http://${vip}${port !== undefined ? `:${port}` : ''}${p}`;
/** Header values as lists: an added value may arrive as "a,b" or "a, b". */
const norm = (v: string | string[] | undefined): string | undefined => (v === undefined ? undefined : String(v).replace(/,\s+/g, ','));

function mismatches(c: Case, a: BatchAnswer): string[] {
  const out: string[] = [];
  const where = `${c.method ?? 'GET'} ${c.url} ${JSON.stringify(c.headers ?? {})}`;
  const bad = (what: string, want: unknown, got: unknown): void => void out.push(`${where}: ${what}: want ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  if (a.error) return [`${where}: ${a.error}`];
  if (a.status !== (c.status ?? 200)) bad('status', c.status ?? 200, `${a.status} ${typeof a.body === 'string' ? a.body.trim() : ''}`);
  const report = typeof a.body === 'object' && a.body !== null ? (a.body as SampleReport) : undefined;
  if (c.backend !== undefined && report?.pod !== c.backend) bad('backend', c.backend, report?.pod);
  if (c.seenPath !== undefined && report?.path !== c.seenPath) bad('path seen by the backend', c.seenPath, report?.path);
  for (const [k, v] of Object.entries(c.seen ?? {})) if (norm(report?.headers[k.toLowerCase()]) !== v) bad(`backend saw ${k}`, v, report?.headers[k.toLowerCase()]);
  for (const k of c.unseen ?? []) if (report?.headers[k.toLowerCase()] !== undefined) bad(`backend saw ${k}`, undefined, report?.headers[k.toLowerCase()]);
  for (const [k, v] of Object.entries(c.got ?? {})) if (norm(a.headers[k.toLowerCase()]) !== v) bad(`response ${k}`, v, a.headers[k.toLowerCase()]);
  for (const k of c.notGot ?? []) if (a.headers[k.toLowerCase()] !== undefined) bad(`response ${k}`, undefined, a.headers[k.toLowerCase()]);
  if (c.location !== undefined && a.headers.location !== c.location) bad('location', c.location, a.headers.location);
  return out;
}

describe('GAMMA conformance scenarios in the lab (client on node-a, echo v1/v2 on node-b, v3 on node-a)', { skip: !isRoot() && 'needs root (eBPF, netns, cgroups)', timeout: 120_000 }, () => {
  const lab = uniqueLabName('gm');
  let state: LabState;

  before(async () => {
    state = await upFromYaml(lab, MANIFEST);
  });
  after(async () => {
    await down(lab);
  });

  async function batch(pod: string, reqs: BatchRequest[]): Promise<BatchAnswer[]> {
    const r = await execInPod(lab, pod, [process.execPath, HTTP_BATCH, JSON.stringify(reqs)]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const answers = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as BatchAnswer);
    assert.equal(answers.length, reqs.length, r.stdout + r.stderr);
    return answers;
  }

  /** Runs every case from `pod` (the client by default) and reports all mismatches at once. */
  async function check(cases: Case[], pod = 'client'): Promise<void> {
    const answers = await batch(
      pod,
      cases.map((c) => ({ url: c.url, method: c.method, headers: c.headers })),
    );
    assert.deepEqual(cases.flatMap((c, i) => mismatches(c, answers[i]!)), []);
  }

  it('MeshBasic: a Service without routes answers', async () => {
    await check([{ url: url(VIP.echo), headers: { Host: 'echo' } }]);
  });

  it('MeshTrafficSplit: exact paths to two versions', async () => {
    await check([
      { url: url(VIP.split, '/v1'), headers: { Host: 'echo' }, backend: 'echo-v1' },
      { url: url(VIP.split, '/v2'), headers: { Host: 'echo' }, backend: 'echo-v2' },
      { url: url(VIP.split, '/v3'), status: 404 },
    ]);
  });

  it('MeshHTTPRouteSimpleSameNamespace: a route in the Service\'s namespace sends to its backend', async () => {
    await check([{ url: url(VIP.sameNs), headers: { Host: 'echo' }, backend: 'echo-v1' }]);
  });

  it('MeshHTTPRouteMatching: path prefixes and headers, ORed within a rule', async () => {
    const m = (p: string, backend: string, headers?: Record<string, string>): Case => ({ url: url(VIP.matching, p), headers, backend });
    await check([
      m('/', 'echo-v1'),
      m('/example', 'echo-v1'),
      m('/', 'echo-v1', { Version: 'one' }),
      m('/v2', 'echo-v2'),
      m('/v2/example', 'echo-v2'),
      m('/', 'echo-v2', { Version: 'two' }),
      m('/v2/', 'echo-v2'),
      m('/v2example', 'echo-v1'),
      m('/foo/v2/example', 'echo-v1'),
    ]);
  });

  it('MeshHTTPRouteQueryParamMatching: query parameters, alone and with path and header matches', async () => {
    const q = (p: string, backend: string | 404, headers?: Record<string, string>): Case =>
      backend === 404 ? { url: url(VIP.query, p), headers, status: 404 } : { url: url(VIP.query, p), headers, backend };
    await check([
      q('/?animal=whale', 'echo-v1'),
      q('/?animal=dolphin', 'echo-v2'),
      q('/?animal=whale&otherparam=irrelevant', 'echo-v1'),
      q('/?animal=dolphin&color=yellow', 'echo-v2'),
      q('/?color=blue', 404),
      q('/?animal=dog', 404),
      q('/?animal=whaledolphin', 404),
      q('/', 404),
      q('/path1?animal=whale', 'echo-v1'),
      q('/?animal=whale', 'echo-v2', { version: 'one' }),
      q('/path3?animal=shark', 'echo-v1'),
      q('/path4?animal=kraken', 'echo-v1', { version: 'three' }),
      q('/?animal=shark', 404),
      q('/path4?animal=kraken', 404),
      q('/path5?animal=hydra', 'echo-v1'),
    ]);
  });

  /** The request header modifier scenario's cases, against a frontend whose filters are at route or backend level. */
  function headerModifierCases(vip: string): Case[] {
    const c = (p: string, headers: Record<string, string>, seen: Record<string, string>, unseen: string[] = []): Case => ({ url: url(vip, p), headers, backend: 'echo-v1', seenPath: p, seen, unseen });
    return [
      c('/set', { 'Some-Other-Header': 'val' }, { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' }),
      c('/set', { 'Some-Other-Header': 'val', 'X-Header-Set': 'some-other-value' }, { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' }),
      c('/add', { 'Some-Other-Header': 'val' }, { 'Some-Other-Header': 'val', 'X-Header-Add': 'add-appends-values' }),
      c('/add', { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value' }, { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value,add-appends-values' }),
      c('/remove', { 'X-Header-Remove': 'val' }, {}, ['X-Header-Remove']),
      c(
        '/multiple',
        { 'X-Header-Set-2': 'set-val-2', 'X-Header-Add-2': 'add-val-2', 'X-Header-Remove-2': 'remove-val-2', 'Another-Header': 'another-header-val' },
        {
          'X-Header-Set-1': 'header-set-1',
          'X-Header-Set-2': 'header-set-2',
          'X-Header-Add-1': 'header-add-1',
          'X-Header-Add-2': 'add-val-2,header-add-2',
          'X-Header-Add-3': 'header-add-3',
          'Another-Header': 'another-header-val',
        },
        ['X-Header-Remove-1', 'X-Header-Remove-2'],
      ),
      // The filter names headers in canonical case, the request in lower case: one header either way.
      c(
        '/case-insensitivity',
        { 'x-header-set': 'original-val-set', 'x-header-add': 'original-val-add', 'x-header-remove': 'original-val-remove', 'Another-Header': 'another-header-val' },
        { 'X-Header-Set': 'header-set', 'X-Header-Add': 'original-val-add,header-add', 'Another-Header': 'another-header-val' },
        ['X-Header-Remove'],
      ),
    ];
  }

  it('MeshHTTPRouteRequestHeaderModifier: set, add and remove at route level', async () => {
    await check(headerModifierCases(VIP.hdrmod));
  });

  it('MeshHTTPRouteBackendRequestHeaderModifier: the same filters on the backendRef', async () => {
    await check(headerModifierCases(VIP.hdrmodBackend));
  });

  it('MeshHTTPRouteRewritePath: prefix and full-path rewrites, with header filters; the path the backend saw', async () => {
    const r = (p: string, seenPath: string, extra: Partial<Case> = {}): Case => ({ url: url(VIP.rewrite, p), headers: { Host: 'echo', ...extra.headers }, backend: 'echo-v1', seenPath, ...extra });
    const mod = { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1', 'X-Header-Set': 'set-val' };
    const modded = { seen: { 'X-Header-Add': 'header-val-1', 'X-Header-Add-Append': 'append-val-1,header-val-2', 'X-Header-Set': 'set-overwrites-values' }, unseen: ['X-Header-Remove'] };
    await check([
      r('/prefix/one/two', '/one/two'),
      r('/strip-prefix/three', '/three'),
      r('/strip-prefix', '/'),
      r('/full/one/two', '/one'),
      // The query is not part of the path: it goes along unchanged.
      r('/prefix/one/two?q=1', '/one/two?q=1'),
      r('/full/rewrite-path-and-modify-headers/test', '/test', { headers: { Host: 'echo', ...mod }, ...modded }),
      r('/prefix/rewrite-path-and-modify-headers/one', '/prefix/one', { headers: { Host: 'echo', ...mod }, ...modded }),
    ]);
  });

  /** A redirect answered by the source agent: status and Location, and no backend involved. */
  const redirect = (vip: string, p: string, status: number, location: string, host = 'echo'): Case => ({ url: url(vip, p), headers: { Host: host }, status, location });

  it('MeshHTTPRouteRedirectHostAndStatus: hostname, with the default 302 and with 301', async () => {
    await check([
      redirect(VIP.redirHost, '/hostname-redirect', 302, 'http://example.org/hostname-redirect'),
      redirect(VIP.redirHost, '/host-and-status', 301, 'http://example.org/host-and-status'),
    ]);
  });

  it('MeshHTTPRouteRedirectPath: prefix and full-path replacement, with hostname and status', async () => {
    await check([
      redirect(VIP.redirPath, '/original-prefix/lemon', 302, 'http://echo/replacement-prefix/lemon'),
      redirect(VIP.redirPath, '/full/path/original', 302, 'http://echo/full-path-replacement'),
      redirect(VIP.redirPath, '/path-and-host', 302, 'http://example.org/replacement-prefix'),
      redirect(VIP.redirPath, '/path-and-status', 301, 'http://echo/replacement-prefix'),
      redirect(VIP.redirPath, '/full-path-and-host', 302, 'http://example.org/replacement-full'),
      redirect(VIP.redirPath, '/full-path-and-status', 301, 'http://echo/replacement-full'),
    ]);
  });

  it('MeshHTTPRouteRedirectPort: port, with hostname and status', async () => {
    await check([
      redirect(VIP.redirPort, '/port', 302, 'http://echo:8083/port'),
      redirect(VIP.redirPort, '/port-and-host', 302, 'http://example.org:8083/port-and-host'),
      redirect(VIP.redirPort, '/port-and-status', 301, 'http://echo:8083/port-and-status'),
      redirect(VIP.redirPort, '/port-and-host-and-status', 302, 'http://example.org:8083/port-and-host-and-status'),
    ]);
  });

  it('MeshHTTPRouteRedirectScheme: https (its well-known port left out), with hostname and status', async () => {
    await check([
      redirect(VIP.redirScheme, '/scheme', 302, 'https://echo/scheme'),
      redirect(VIP.redirScheme, '/scheme-and-host', 302, 'https://example.org/scheme-and-host'),
      redirect(VIP.redirScheme, '/scheme-and-status', 301, 'https://echo/scheme-and-status'),
      redirect(VIP.redirScheme, '/scheme-and-host-and-status', 302, 'https://example.org/scheme-and-host-and-status'),
    ]);
  });

  it('MeshHTTPRoute303Redirect, 307Redirect, 308Redirect: the status asked, Location the same URL', async () => {
    await check([
      redirect(VIP.redirStatus, '/redirect', 303, 'http://echo/redirect'),
      redirect(VIP.redirStatus, '/temporary', 307, 'http://echo/temporary'),
      redirect(VIP.redirStatus, '/permanent', 308, 'http://echo/permanent'),
      // The request's own port and query stay.
      redirect(VIP.redirStatus, '/permanent?a=1', 308, 'http://echo:8080/permanent?a=1', 'echo:8080'),
    ]);
  });

  it('MeshHTTPRouteWeight: 500 requests on one connection split 70/30 within 5 %; weight 0 gets none', async () => {
    const r = await execInPod(lab, 'client', ['nodemesh', 'sample', 'client', '--url', url(VIP.weight), '--count', '500', '--summary', '--quiet']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const s = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { summary: { ok: number; byPod: Record<string, number> } }).summary;
    assert.equal(s.ok, 500);
    assert.deepEqual(Object.keys(s.byPod).sort(), ['echo-v1', 'echo-v2'], JSON.stringify(s.byPod));
    assert.ok(Math.abs(s.byPod['echo-v1']! - 350) <= 25, JSON.stringify(s.byPod));
    assert.ok(Math.abs(s.byPod['echo-v2']! - 150) <= 25, JSON.stringify(s.byPod));
  });

  it('MeshHTTPRouteNamedRule: both rules route; the access line names the rule', async () => {
    const id = (n: string): string => `named-${lab}-${n}`;
    await check([
      { url: url(VIP.named, '/named'), headers: { 'x-request-id': id('a') }, backend: 'echo-v1', seenPath: '/named' },
      { url: url(VIP.named, '/unnamed'), headers: { 'x-request-id': id('b') }, backend: 'echo-v2', seenPath: '/unnamed' },
    ]);
    const node = state.nodes.find((n) => n.name === 'node-a')!;
    const routeOf = (rid: string): string[] =>
      fs
        .readFileSync(node.agentLog, 'utf8')
        .split('\n')
        .filter((l) => l.includes(`"request_id":"${rid}"`))
        .map((l) => (JSON.parse(l) as { route_name: string }).route_name);
    await waitFor('the access lines', async () => routeOf(id('b')).length > 0, 3000);
    assert.deepEqual(routeOf(id('a')), [`${NS}/named/named-rule`]);
    assert.deepEqual(routeOf(id('b')), [`${NS}/named/rule-1`]);
  });

  it('MeshFrontend: a route on a Service applies to calls to its VIP, not to its pods\' IPs', async () => {
    await check([
      { url: url(VIP.echoV2), headers: { Host: 'echo-v2' }, backend: 'echo-v2', got: { 'X-Header-Set': 'set' } },
      { url: url(podIP(state, 'echo-v2'), '/', 8080), backend: 'echo-v2', notGot: ['X-Header-Set'] },
    ]);
  });

  it('MeshFrontendHostname: routes follow the VIP called, whatever the Host header says', async () => {
    await check([
      { url: url(VIP.echoV2), headers: { Host: 'echo-v1' }, backend: 'echo-v2', got: { 'X-Header-Set': 'set' } },
      { url: url(VIP.echoV1), headers: { Host: 'echo-v2' }, backend: 'echo-v1', notGot: ['X-Header-Set'] },
    ]);
  });

  it('MeshPorts: a parentRef port limits the route to that port; without one it covers every port', async () => {
    await check([
      { url: url(VIP.portsV1), backend: 'echo-v1', got: { 'X-Header-Set': 'v1' } },
      { url: url(VIP.portsV1, '/', 8080), backend: 'echo-v1', notGot: ['X-Header-Set'] },
      { url: url(VIP.portsV2), backend: 'echo-v2', got: { 'X-Header-Set': 'v2' } },
      { url: url(VIP.portsV2, '/', 8080), backend: 'echo-v2', got: { 'X-Header-Set': 'v2' } },
    ]);
  });

  it('MeshConsumerRoute: a route in the client\'s namespace applies to its own calls only', async () => {
    const host = { Host: `echo-v1.${NS}` };
    await check([{ url: url(VIP.echoV1), headers: host, backend: 'echo-v1', got: { 'X-Header-Set': 'set' } }], 'consumer');
    await check([{ url: url(VIP.echoV1), headers: host, backend: 'echo-v1', notGot: ['X-Header-Set'] }], 'client');
    assert.equal(state.pods.find((p) => p.name === 'consumer')?.namespace, CONSUMER_NS);
  });

  it('HTTPRouteHeaderMatching (Gateway profile): exact header matches, ANDed within a match, ORed across', async () => {
    const h = (headers: Record<string, string>, backend: string | 404): Case => (backend === 404 ? { url: url(VIP.hdrMatch), headers, status: 404 } : { url: url(VIP.hdrMatch), headers, backend });
    await check([
      h({ Version: 'one' }, 'echo-v1'),
      h({ Version: 'two' }, 'echo-v2'),
      h({ Version: 'two', Color: 'orange' }, 'echo-v1'),
      h({ Version: 'two', Color: 'blue' }, 'echo-v2'),
      h({ Color: 'orange' }, 404),
      h({ 'Some-Other-Header': 'one' }, 404),
      h({ Color: 'blue' }, 'echo-v1'),
      h({ Color: 'green' }, 'echo-v1'),
      h({ Color: 'red' }, 'echo-v2'),
      h({ Color: 'yellow' }, 'echo-v2'),
      h({ Color: 'purple' }, 404),
    ]);
  });

  it('HTTPRouteMethodMatching (Gateway profile): methods alone and with paths and headers, in precedence order', async () => {
    const m = (method: string, p: string, backend: string | 404, headers?: Record<string, string>): Case =>
      backend === 404 ? { url: url(VIP.methodMatch, p), method, headers, status: 404 } : { url: url(VIP.methodMatch, p), method, headers, backend };
    await check([
      m('POST', '/', 'echo-v1'),
      m('GET', '/', 'echo-v2'),
      m('HEAD', '/', 404),
      m('GET', '/path1', 'echo-v1'),
      m('PUT', '/', 'echo-v2', { version: 'one' }),
      m('POST', '/path2', 'echo-v3', { version: 'two' }),
      m('PATCH', '/path3', 'echo-v1'),
      m('DELETE', '/path4', 'echo-v1', { version: 'three' }),
      m('PUT', '/', 404),
      m('DELETE', '/path4', 404),
      m('PATCH', '/path5', 'echo-v1'),
      m('PATCH', '/', 'echo-v2', { version: 'four' }),
    ]);
  });

  it('MeshGRPCRouteWeight: 200 calls split 70/30 within 5 %; weight 0 gets none', async () => {
    const r = await execInPod(lab, 'client', ['nodemesh', 'sample', 'grpc-client', '--target', `${VIP.grpcWeight}:7070`, '--count', '200', '--summary', '--quiet']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const s = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { summary: { ok: number; byPod: Record<string, number> } }).summary;
    assert.equal(s.ok, 200);
    assert.deepEqual(Object.keys(s.byPod).sort(), ['echo-v1', 'echo-v2'], JSON.stringify(s.byPod));
    assert.ok(Math.abs(s.byPod['echo-v1']! - 140) <= 10, JSON.stringify(s.byPod));
    assert.ok(Math.abs(s.byPod['echo-v2']! - 60) <= 10, JSON.stringify(s.byPod));
  });

  it('MeshGRPCRouteRequestHeaderModifier: set, add, remove on matched calls; the metadata the server saw', async () => {
    const calls = async (pod: string, mds: Record<string, string>[]): Promise<EchoCallAnswer[]> => {
      const r = await execInPod(lab, pod, [process.execPath, GRPC_CALL, `${VIP.grpcHdrmod}:7070`, JSON.stringify(mds)]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as EchoCallAnswer);
    };
    const [set, add, remove] = await calls('client', [
      { 'x-test-case': 'set', 'some-other-header': 'this-header-should-be-set', 'x-header-set': 'this-value-should-be-overwritten' },
      { 'x-test-case': 'add', 'x-header-add': 'this-value-should-be-appended' },
      { 'x-test-case': 'remove', 'x-header-remove': 'this-should-be-removed' },
    ]);
    // The scenario's last case calls from the v2 pod itself (node-b).
    const [multi] = await calls('echo-v2', [{ 'x-test-case': 'multi', 'x-header-set-2': 'set-header-2', 'x-header-add-2': 'add-header-2', 'x-header-remove-2': 'should-be-removed-2' }]);
    const view = (a: EchoCallAnswer | undefined, keys: string[]): unknown => ({ code: a?.code, pod: a?.pod, ...Object.fromEntries(keys.map((k) => [k, norm(a?.metadata?.[k])])) });
    assert.deepEqual(view(set, ['x-test-case', 'some-other-header', 'x-header-set']), {
      code: 0,
      pod: 'echo-v1',
      'x-test-case': 'set',
      'some-other-header': 'this-header-should-be-set',
      'x-header-set': 'set-overwrites-values',
    });
    assert.deepEqual(view(add, ['x-test-case', 'x-header-add']), { code: 0, pod: 'echo-v1', 'x-test-case': 'add', 'x-header-add': 'this-value-should-be-appended,add-appends-values' });
    assert.deepEqual(view(remove, ['x-test-case', 'x-header-remove']), { code: 0, pod: 'echo-v1', 'x-test-case': 'remove', 'x-header-remove': undefined });
    assert.deepEqual(view(multi, ['x-test-case', 'x-header-set-1', 'x-header-set-2', 'x-header-add-1', 'x-header-add-2', 'x-header-remove-1', 'x-header-remove-2']), {
      code: 0,
      pod: 'echo-v2',
      'x-test-case': 'multi',
      'x-header-set-1': 'header-set-1',
      'x-header-set-2': 'header-set-2',
      'x-header-add-1': 'header-add-1',
      'x-header-add-2': 'add-header-2,header-add-2',
      'x-header-remove-1': undefined,
      'x-header-remove-2': undefined,
    });
  });

  it('an invalid edit of a route: file:line:field in the log, Accepted=False in both status commands, the last good version served', async () => {
    const file = meshConfigFile(lab);
    const original = fs.readFileSync(file, 'utf8');
    const docs = parseAllDocuments(original);
    const split = docs.find((d) => d.getIn(['kind']) === 'HTTPRoute' && d.getIn(['metadata', 'name']) === 'split')!;
    split.setIn(['spec', 'rules', 1, 'matches', 0, 'path', 'value'], 'v2');
    const edited = docs.map((d) => d.toString()).join('---\n');
    // The line of the bad value in the file as written.
    const lc = new LineCounter();
    const reparsed = parseAllDocuments(edited, { lineCounter: lc }).find((d) => d.getIn(['metadata', 'name']) === 'split' && d.getIn(['kind']) === 'HTTPRoute')!;
    const line = lc.linePos((reparsed.getIn(['spec', 'rules', 1, 'matches', 0, 'path', 'value'], true) as Scalar).range![0]).line;
    const field = 'spec.rules[1].matches[0].path.value';
    const writeConfig = (text: string): void => {
      fs.writeFileSync(`${file}.tmp`, text);
      fs.renameSync(`${file}.tmp`, file);
    };
    // `nodemesh controlplane status` against the running control plane (in the lab's fabric netns).
    const cpStatus = (): Promise<{ code: number; stdout: string; stderr: string }> =>
      runCommand('nsenter', [`--net=${netnsPath(state.fabricNetns)}`, process.execPath, DEFAULT_CLI, 'controlplane', 'status']);
    try {
      writeConfig(edited);
      const log = state.controlPlane!.log;
      await waitFor('the control plane to report the invalid route', async () => fs.readFileSync(log, 'utf8').includes(`${file}:${line}`), 5000);
      assert.match(fs.readFileSync(log, 'utf8'), new RegExp(`${file.replace(/[.]/g, '\\.')}:${line}[^\\n]*${field.replace(/[.[\]]/g, '\\$&')}`));

      const live = await cpStatus();
      assert.equal(live.code, 1, 'a route not accepted makes the status command fail');
      const block = live.stdout.slice(live.stdout.indexOf(`HTTPRoute ${NS}/split`)).split(/\n(?=\S)/)[0]!;
      assert.match(block, new RegExp(`invalid: ${file.replace(/[.]/g, '\\.')}:${line}: .*field ${field.replace(/[.[\]]/g, '\\$&')}`));
      assert.match(block, /Accepted=False UnsupportedValue: .*the last good version of this route is still served/);

      const lab1 = await runCommand(process.execPath, [DEFAULT_CLI, 'lab', 'status', '--name', lab]);
      assert.match(lab1.stdout, new RegExp(`HTTPRoute ${NS}/split\\s+-\\s+False \\(invalid\\)`));
      assert.match(lab1.stdout, new RegExp(`HTTPRoute ${NS}/split invalid: ${file.replace(/[.]/g, '\\.')}:${line}: field ${field.replace(/[.[\]]/g, '\\$&')}`));

      // The last good version still routes /v2.
      await check([{ url: url(VIP.split, '/v2'), backend: 'echo-v2' }]);
    } finally {
      writeConfig(original);
    }
    await waitFor('the route accepted again', async () => (await cpStatus()).code === 0, 5000);
  });
});
