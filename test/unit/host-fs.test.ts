// Unit: directories on bpffs/cgroupfs are made only on the right filesystem, one component at a time,
// and a wrong mount is one clear error, never a retry loop (Node's recursive mkdir spins forever on sysfs).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { BPFFS_ROOT, ensureBpffs, existingAncestor, FS_MAGIC, fsKindName, fsTypeOf, mkdirsOn } from '../../src/util/host-fs';

const quiet = { info: (): void => {} };

test('mkdirsOn refuses a path whose existing ancestor is on another filesystem, naming both', () => {
  // /sys/kernel exists on sysfs, where mkdir answers ENOENT: the case that made lab up spin forever.
  const started = Date.now();
  assert.throws(() => mkdirsOn('/sys/kernel/nodemesh-test/a/b', 'bpf'), (err: Error & { code: string }) => {
    assert.equal(err.code, 'NM_HOST_FS_WRONG');
    assert.match(err.message, /cannot create \/sys\/kernel\/nodemesh-test\/a\/b: \/sys\/kernel is on sysfs, not bpf/);
    assert.match(err.message, /mount -t bpf bpf \/sys\/fs\/bpf/);
    return true;
  });
  assert.ok(Date.now() - started < 1000);
  assert.equal(fs.existsSync('/sys/kernel/nodemesh-test'), false);
  assert.throws(() => mkdirsOn('/proc/nodemesh-test', 'cgroup2'), /\/proc is on proc, not cgroup2/);
});

test('mkdirsOn creates each missing component on the right filesystem, and is idempotent', (t) => {
  if (fsTypeOf('/dev/shm') !== FS_MAGIC.tmpfs) {
    t.diagnostic('/dev/shm is not tmpfs here; checking the refusal on it instead');
    assert.throws(() => mkdirsOn('/dev/shm/nm-x', 'tmpfs'), { code: 'NM_HOST_FS_WRONG' });
    return;
  }
  const base = fs.mkdtempSync('/dev/shm/nm-hostfs-');
  try {
    const deep = path.join(base, 'a', 'b', 'c');
    mkdirsOn(deep, 'tmpfs', 0o700);
    assert.ok(fs.statSync(deep).isDirectory());
    assert.equal(fs.statSync(deep).mode & 0o777, 0o700);
    mkdirsOn(deep, 'tmpfs');
    assert.equal(existingAncestor(path.join(deep, 'x', 'y')), deep);
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test('fsKindName names known filesystems and shows others in hex', () => {
  assert.equal(fsKindName(FS_MAGIC.bpf), 'bpf');
  assert.equal(fsKindName(null), 'nothing (does not exist)');
  assert.equal(fsKindName(0x1234), '0x1234');
  assert.equal(fsKindName(fsTypeOf(os.tmpdir())).length > 0, true);
});

test('ensureBpffs refuses a pin root outside /sys/fs/bpf that is not on bpffs, without mounting', () => {
  let mounts = 0;
  assert.throws(() => ensureBpffs(path.join(os.tmpdir(), 'pins'), () => mounts++, quiet), {
    code: 'NM_HOST_BPFFS',
    message: /is not on a bpf filesystem/,
  });
  assert.equal(mounts, 0);
});

test('ensureBpffs mounts at /sys/fs/bpf only when it is not bpffs, and checks the mount took', () => {
  const calls: string[] = [];
  const logs: string[] = [];
  const log = { info: (_o: object, m: string): void => void logs.push(m) };
  if (fsTypeOf(BPFFS_ROOT) === FS_MAGIC.bpf) {
    assert.equal(ensureBpffs(`${BPFFS_ROOT}/nodemesh/v1`, (t) => calls.push(t), log), null);
    assert.deepEqual(calls, []);
    assert.deepEqual(logs, []);
  } else {
    // A mounter that does nothing: the check after it must notice instead of carrying on.
    assert.throws(() => ensureBpffs(`${BPFFS_ROOT}/nodemesh/v1`, (t) => calls.push(t), log), {
      code: 'NM_HOST_BPFFS',
      message: /mounted bpffs at \/sys\/fs\/bpf, yet it still reads as sysfs/,
    });
    assert.deepEqual(calls, [BPFFS_ROOT]);
    // A mounter that fails: its reason is in the error.
    assert.throws(() => ensureBpffs(`${BPFFS_ROOT}/x`, () => { throw new Error('EPERM: needs CAP_SYS_ADMIN'); }, log), /mounting it failed: EPERM: needs CAP_SYS_ADMIN/);
  }
});
