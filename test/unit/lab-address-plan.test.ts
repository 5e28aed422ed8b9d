// Unit tests of the lab address plan: node fabric IPs and CIDRs, pod IPs, routes, names, conflicts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inCidr, planAddresses } from '../../src/lab/address-plan';
import { LabManifestError } from '../../src/lab/errors';
import { parseManifest } from '../../src/lab/manifest';
import { nodeStateDir, podKey } from '../../src/lab/paths';

function pods(list: { name: string; node: string; ns?: string; ip?: string; enroll?: boolean }[]) {
  const docs = list.map(
    (p) => `apiVersion: v1
kind: Pod
metadata:
  name: ${p.name}
  namespace: ${p.ns ?? 'default'}
  annotations: {nodemesh.io/enroll: "${p.enroll === false ? 'false' : 'true'}"}
spec: {nodeName: ${p.node}, containers: [{name: c, command: [sleep, infinity]}]}
${p.ip ? `status: {podIP: ${p.ip}}\n` : ''}`,
  );
  return parseManifest(docs.join('---\n'), 'm.yaml').pods;
}

describe('lab address plan', () => {
  it('numbers nodes in order of appearance and assigns pod IPs from each node CIDR', () => {
    const plan = planAddresses('t', pods([
      { name: 'a1', node: 'node-a' },
      { name: 'b1', node: 'node-b' },
      { name: 'a2', node: 'node-a' },
      { name: 'legacy', node: 'node-b', enroll: false },
    ]));
    assert.deepEqual(plan.nodes.map((n) => [n.name, n.index, n.fabricIP, n.cidr, n.gateway, n.netns, n.fabricIf]), [
      ['node-a', 1, '198.18.0.1', '198.19.1.0/24', '198.19.1.1', 'nm-t-node-a', 'n1'],
      ['node-b', 2, '198.18.0.2', '198.19.2.0/24', '198.19.2.1', 'nm-t-node-b', 'n2'],
    ]);
    assert.deepEqual(plan.pods.map((p) => [p.spec.name, p.ip, p.netns, p.hostIf, p.enroll]), [
      ['a1', '198.19.1.2', 'nm-t-default-a1', 'p0', true],
      ['b1', '198.19.2.2', 'nm-t-default-b1', 'p0', true],
      ['a2', '198.19.1.3', 'nm-t-default-a2', 'p1', true],
      ['legacy', '198.19.2.3', 'nm-t-default-legacy', 'p1', false],
    ]);
    assert.equal(plan.fabricNetns, 'nm-t-fabric');
    assert.deepEqual(plan.nodes[0]?.routes, [{ dst: '198.19.2.0/24', via: '198.18.0.2', dev: 'fab0' }]);
    assert.deepEqual(plan.nodes[1]?.routes, [{ dst: '198.19.1.0/24', via: '198.18.0.1', dev: 'fab0' }]);
  });

  it('honours pinned pod IPs, skips them when assigning, and routes off-CIDR /32s', () => {
    const plan = planAddresses('t', pods([
      { name: 'x', node: 'a' },
      { name: 'pinned', node: 'a', ip: '198.19.1.2' },
      { name: 'far', node: 'b', ip: '198.18.7.9' },
    ]));
    assert.deepEqual(plan.pods.map((p) => p.ip), ['198.19.1.3', '198.19.1.2', '198.18.7.9']);
    assert.deepEqual(plan.nodes[0]?.routes, [
      { dst: '198.19.2.0/24', via: '198.18.0.2', dev: 'fab0' },
      { dst: '198.18.7.9/32', via: '198.18.0.2', dev: 'fab0' },
    ]);
    assert.deepEqual(plan.nodes[1]?.routes, [{ dst: '198.19.1.0/24', via: '198.18.0.1', dev: 'fab0' }, { dst: '198.18.7.9/32', dev: 'br0' }]);
  });

  it('rejects pinned IPs outside the lab range, on the fabric, or in another node CIDR, with their line', () => {
    const cases: [string, RegExp][] = [
      ['10.1.2.3', /outside the lab range 198\.18\.0\.0\/15/],
      ['198.18.0.7', /198\.18\.0\.0\/24, which the lab uses for node addresses/],
      ['198.19.2.5', /not in node a's pod CIDR 198\.19\.1\.0\/24/],
      ['198.19.1.1', /gateway, network or broadcast/],
    ];
    for (const [ip, re] of cases) {
      assert.throws(
        () => planAddresses('t', pods([{ name: 'p', node: 'a', ip }])),
        (e: unknown) => e instanceof LabManifestError && e.code === 'NM_LAB_ADDRESS_PLAN' && re.test(e.message) && e.issues[0]?.line === 8 && e.issues[0]?.field === 'status.podIP',
        ip,
      );
    }
  });

  it('keeps pod netns names distinct when namespace-name pairs collide', () => {
    const plan = planAddresses('t', pods([
      { name: 'c', ns: 'a-b', node: 'n' },
      { name: 'b-c', ns: 'a', node: 'n' },
    ]));
    assert.equal(podKey('a-b', 'c'), podKey('a', 'b-c'));
    const [x, y] = plan.pods;
    assert.notEqual(x?.netns, y?.netns);
    assert.match(x?.key ?? '', /^a-b-c-[0-9a-f]{8}$/);
  });

  it('keeps pod netns names apart from node and fabric netns names', () => {
    const plan = planAddresses('t', pods([
      { name: 'x', node: 'default-y' },
      { name: 'y', node: 'default-y' },
      { name: 'fabric', ns: 'default', node: 'default-y' },
    ]));
    const names = [plan.fabricNetns, ...plan.nodes.map((n) => n.netns), ...plan.pods.map((p) => p.netns)];
    assert.equal(new Set(names).size, names.length, names.join(' '));
    assert.equal(plan.pods[0]?.netns, 'nm-t-default-x');
    assert.throws(
      () => planAddresses('t', pods([{ name: 'p', node: 'fabric' }])),
      (e: unknown) => e instanceof LabManifestError && /reserved for the lab's fabric/.test(e.message),
    );
  });

  it('keeps interface and netns names within kernel limits', () => {
    const long = 'n'.repeat(60);
    const plan = planAddresses('lab-with-long-name', pods([{ name: 'p'.repeat(200), ns: 'q'.repeat(60), node: long }]));
    const p = plan.pods[0]!;
    assert.ok(p.netns.length <= 100, p.netns);
    assert.ok(p.hostIf.length <= 15);
    assert.ok(plan.nodes[0]!.fabricIf.length <= 15);
    assert.equal(nodeStateDir('x', 'node-a'), '/run/nodemesh/lab/x/nodes/node-a');
  });

  it('computes CIDR membership', () => {
    assert.ok(inCidr('198.19.255.1', '198.18.0.0/15'));
    assert.ok(!inCidr('198.20.0.0', '198.18.0.0/15'));
    assert.ok(inCidr('198.18.0.255', '198.18.0.0/24'));
    assert.ok(!inCidr('198.18.1.0', '198.18.0.0/24'));
  });
});
