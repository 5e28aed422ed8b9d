// The lab's public API: a multi-node mesh on one Linux machine (netns + cgroups), for tests and demos.

export { labUp, defaultAgentCommand, AGENT_NODE_FLAGS, type UpOptions } from './up';
export { labDown, type DownOptions, type DownReport } from './down';
export { labExec, resolvePod, type ExecOptions } from './exec';
export { labStatus, formatStatus, type LabStatus, type NodeStatus, type PodStatus } from './status';
export { parseManifest, loadManifest, type LabManifest, type PodSpec } from './manifest';
export { ENROLL_ANNOTATION } from '../enroll/membership';
export { planAddresses, type AddressPlan } from './address-plan';
export { LabError, LabManifestError, type ManifestIssue } from './errors';
export { nodeStateDir, adminSocket, enrollSocket, labDir, DEFAULT_LAB } from './paths';
export { readState, readStateIfAny, type LabState } from './state';
export { stderrLogger, silentLogger, type LabLogger } from './log';
export { startAgent, killAgent, upgradeAgent, type UpgradeResult } from './agent-control';
export { labExecCapture, type CaptureResult } from './exec-capture';
export { labUpKubernetes, addKubePods, type KubeUpOptions } from './kube/kube-up';
export { LabKubeError, type LabKubeErrorCode } from './kube/errors';
