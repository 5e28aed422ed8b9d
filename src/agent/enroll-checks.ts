// What an enrollment request must satisfy on this node before the datapath is touched: a live netns, a cgroup
// v2 directory under the agent's cgroup root.

import fs from 'node:fs';
import path from 'node:path';
import { EnrollError, type EnrolledPod } from '../enroll/protocol';

export function checkPodPaths(pod: Pick<EnrolledPod, 'netnsPath' | 'cgroupPath'>, cgroupRoot: string): void {
  if (!fs.existsSync(pod.netnsPath)) {
    throw new EnrollError('NM_ENROLL_NO_NETNS', 400, `network namespace ${pod.netnsPath} does not exist`, {
      hint: 'is the pod sandbox still running? the CNI must pass the netns path of the live pod',
    });
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(pod.cgroupPath);
  } catch {
    throw new EnrollError('NM_ENROLL_NO_CGROUP', 400, `cgroup ${pod.cgroupPath} does not exist`, {
      hint: 'pass the pod\'s cgroup v2 directory (absolute path)',
    });
  }
  if (!st.isDirectory()) throw new EnrollError('NM_ENROLL_NO_CGROUP', 400, `cgroup ${pod.cgroupPath} is not a directory`);
  const rel = path.relative(cgroupRoot, pod.cgroupPath);
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new EnrollError('NM_ENROLL_CGROUP_OUTSIDE_ROOT', 400, `cgroup ${pod.cgroupPath} is not under the agent's cgroup root ${cgroupRoot}`, {
      hint: 'connect-time redirection only applies below --cgroup-root; start the agent with a root that contains pod cgroups',
    });
  }
}
