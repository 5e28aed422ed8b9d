// Unit: the datapath preflight names exactly what is missing; native entries reject bad arguments by name.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { DatapathError } from '../../src/datapath/errors';
import { defaultAddonPath, loadNative } from '../../src/datapath/native';
import { effectiveCaps, probeBtf, probeCgroup2, probeObject, probePrivilege } from '../../src/datapath/probe';

const CAP = (n: number): bigint => 1n << BigInt(n);

test('effectiveCaps parses /proc/self/status', () => {
  assert.equal(effectiveCaps('Name:\tx\nCapEff:\t000001ffffffffff\n'), 0x1ffffffffffn);
  assert.equal(effectiveCaps('Name:\tx\n'), 0n);
});

test('probePrivilege lists each missing capability', () => {
  assert.throws(() => probePrivilege(0n), (err: DatapathError) => {
    assert.equal(err.code, 'NM_DATAPATH_NO_PRIVILEGE');
    assert.match(err.message, /CAP_SYS_ADMIN.*CAP_NET_ADMIN.*CAP_BPF/);
    return true;
  });
  assert.throws(() => probePrivilege(CAP(21) | CAP(39)), /CAP_NET_ADMIN/);
  assert.doesNotThrow(() => probePrivilege(CAP(21) | CAP(12)));
});

test('probes fail with stable codes', () => {
  assert.throws(() => probeBtf('/nonexistent/vmlinux'), { code: 'NM_DATAPATH_NO_BTF' });
  assert.throws(() => probeCgroup2('/nonexistent/cgroup'), { code: 'NM_DATAPATH_NO_CGROUP2' });
  assert.throws(() => probeCgroup2('/proc'), { code: 'NM_DATAPATH_NO_CGROUP2' });
  assert.throws(() => probeObject('/nonexistent/x.o'), (err: DatapathError) => err.code === 'NM_DATAPATH_NO_OBJECT' && /npm run build:bpf/.test(err.message));
});

const haveAddon = fs.existsSync(defaultAddonPath());

test('native entries validate arguments and map errno to code + hint', { skip: haveAddon ? false : 'addon not built (npm run build:native)' }, async () => {
  const n = loadNative();
  assert.throws(() => new n.BpfObject(1 as unknown as string, '/x'), { name: 'TypeError', message: /'objectPath'/ });
  assert.throws(() => (n.openNetns as (p?: unknown) => number)(), { name: 'TypeError', message: /'path' is required/ });
  assert.throws(() => n.openNetns('/run/netns/nm-t-nonexistent'), (err: Error & { code: string; errno: number; hint: string }) => {
    assert.equal(err.code, 'ENOENT');
    assert.equal(err.errno, -2);
    assert.equal(err.message, 'network namespace /run/netns/nm-t-nonexistent does not exist: is the pod sandbox still running?');
    return true;
  });
  assert.throws(() => n.openNetns('/proc/self/status'), { code: 'EINVAL', message: /not a network namespace/ });
  assert.throws(() => n.closeFd(-1), { name: 'TypeError', message: /'fd'/ });
  const th = new n.NetnsThread();
  try {
    assert.throws(() => th.listen(0, 5 as 4, '127.0.0.1', 1, 1, 0, false), { name: 'TypeError', message: /'family'/ });
    assert.throws(() => th.listen(0, 4, 'not-an-ip', 1, 1, 0, false), { name: 'TypeError', message: /'ip'/ });
    assert.throws(() => th.socket(0, 4, -1), { name: 'TypeError', message: /'mark'/ });
    assert.throws(() => th.sockets(0, 4, 0, 0), { name: 'TypeError', message: /'count'/ });
  } finally {
    th.close();
  }
  assert.throws(() => th.socket(0, 4, 0), /closed/);
  assert.match(n.libbpfVersion(), /^v1\./);
});
