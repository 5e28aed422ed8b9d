// `--concurrency 0` sizes the agent's threads by its CPU quota: the tightest cpu.max of its cgroup and ancestors.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { cgroupCpuLimit } from '../../src/util/cgroup2';

describe('cgroupCpuLimit', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-cg-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  const write = (rel: string, cpuMax?: string): void => {
    fs.mkdirSync(path.join(root, rel), { recursive: true });
    if (cpuMax !== undefined) fs.writeFileSync(path.join(root, rel, 'cpu.max'), cpuMax + '\n');
  };

  it('takes the tightest quota on the way up, rounded up to whole CPUs; unlimited is null', () => {
    write('kubepods', 'max 100000');
    write('kubepods/pod1', '350000 100000');
    write('kubepods/pod1/agent', '500000 100000');
    write('kubepods/pod2', 'max 100000');
    write('kubepods/pod2/agent', '50000 100000');
    write('free/agent');
    assert.equal(cgroupCpuLimit(root, '/kubepods/pod1/agent'), 4, 'the pod limit (3.5 CPUs) is tighter than the container\'s (5)');
    assert.equal(cgroupCpuLimit(root, '/kubepods/pod2/agent'), 1, 'half a CPU still runs one thread');
    assert.equal(cgroupCpuLimit(root, '/free/agent'), null, 'no cpu.max files: no quota');
    assert.equal(cgroupCpuLimit(root, '/kubepods'), null, '"max" is no quota');
    assert.equal(cgroupCpuLimit(root, '/'), null);
  });
});
