// Control-plane errors: stable codes, and messages that name the file, line and field to fix.

import { NodemeshError, type CodeOf } from '../util/errors';

export const CP_ERR = {
  /** A YAML file could not be parsed at all. */
  YAML_SYNTAX: 'NM_CP_YAML_SYNTAX',
  /** A document parsed but a field is missing or has the wrong shape. */
  INVALID_OBJECT: 'NM_CP_INVALID_OBJECT',
  /** Two objects of one kind share namespace/name across sources. */
  DUPLICATE_OBJECT: 'NM_CP_DUPLICATE_OBJECT',
  /** --config points at something that is neither a YAML file nor a directory. */
  CONFIG_PATH: 'NM_CP_CONFIG_PATH',
  /** The Kubernetes API could not be reached or listed. */
  KUBERNETES: 'NM_CP_KUBERNETES',
  /** The 198.18.128.0/17 VIP range is exhausted. */
  VIP_EXHAUSTED: 'NM_CP_VIP_EXHAUSTED',
  /** The xDS or metrics listener could not bind. */
  LISTEN: 'NM_CP_LISTEN',
  /** An xDS request the server cannot serve (unknown type URL, bad subscription). */
  XDS_REQUEST: 'NM_CP_XDS_REQUEST',
} as const;

export type ControlPlaneErrorCode = CodeOf<typeof CP_ERR>;

export class ControlPlaneError extends NodemeshError<ControlPlaneErrorCode> {}

/** Where a config problem sits: `file:line` plus the dotted field path inside the object. */
export interface ConfigIssue {
  file: string;
  line: number;
  /** Dotted path, e.g. `spec.ports[0].targetPort`; empty for whole-document problems. */
  field: string;
  message: string;
  kind?: string;
  name?: string;
  /** `Kind/namespace/name` of the object, when the document named itself (route status finds its issues by it). */
  key?: string;
}

export function formatIssue(i: ConfigIssue): string {
  const what = i.kind ? `${i.kind}${i.name ? ` "${i.name}"` : ''}: ` : '';
  const field = i.field ? `field ${i.field}: ` : '';
  return `${i.file}:${i.line}: ${what}${field}${i.message}`;
}

/** One rejected document (or a whole unparsable file); carries every issue found in it. */
export class ConfigError extends ControlPlaneError {
  readonly issues: ConfigIssue[];

  constructor(code: typeof CP_ERR.YAML_SYNTAX | typeof CP_ERR.INVALID_OBJECT, issues: ConfigIssue[]) {
    super(code, issues.map(formatIssue).join('; '), {
      hint:
        code === CP_ERR.YAML_SYNTAX
          ? 'fix the YAML syntax; the previous good objects from this file stay in force'
          : 'fix the field; the last good version of this object stays in force',
    });
    this.issues = issues;
  }
}
