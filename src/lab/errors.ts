// LabError: the lab's failures, each with a stable code and a message that says what to check.

import { NodemeshError } from '../util/errors';

/** Stable codes; never renamed once shipped (scripts and tests match on them). */
export type LabErrorCode =
  | 'NM_LAB_MANIFEST_READ'
  | 'NM_LAB_MANIFEST_INVALID'
  | 'NM_LAB_ADDRESS_PLAN'
  | 'NM_LAB_BAD_NAME'
  | 'NM_LAB_EXISTS'
  | 'NM_LAB_NOT_FOUND'
  | 'NM_LAB_POD_NOT_FOUND'
  | 'NM_LAB_POD_AMBIGUOUS'
  | 'NM_LAB_COMMAND_FAILED'
  | 'NM_LAB_NOT_ROOT'
  | 'NM_LAB_AGENT_START'
  | 'NM_LAB_AGENT_NOT_READY'
  | 'NM_LAB_CONTROLPLANE'
  | 'NM_LAB_ENROLL_FAILED'
  | 'NM_LAB_CONTAINER_START'
  | 'NM_LAB_TEARDOWN_INCOMPLETE'
  | 'NM_LAB_UP_FAILED'
  | 'NM_LAB_PROMETHEUS';

export class LabError extends NodemeshError {
  declare readonly code: LabErrorCode;
  constructor(code: LabErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(code, message, options);
  }
}

/** One problem in a manifest, located precisely enough for an editor jump (`file:line:col`). */
export interface ManifestIssue {
  file: string;
  line: number;
  col: number;
  /** Dotted path of the offending field, e.g. `spec.containers[0].command`. */
  field: string;
  message: string;
}

export function formatIssue(i: ManifestIssue): string {
  return `${i.file}:${i.line}:${i.col}: ${i.field}: ${i.message}`;
}

/** Invalid manifest: carries every issue found, so one run shows all the fixes needed. */
export class LabManifestError extends LabError {
  readonly issues: ManifestIssue[];
  constructor(issues: ManifestIssue[], code: LabErrorCode = 'NM_LAB_MANIFEST_INVALID') {
    const first = issues[0];
    const head = first ? formatIssue(first) : 'invalid manifest';
    const rest = issues.length > 1 ? `\n${issues.slice(1).map(formatIssue).join('\n')}` : '';
    super(code, `${head}${rest}`);
    this.issues = issues;
  }
}
