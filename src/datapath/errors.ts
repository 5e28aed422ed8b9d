// Datapath errors: one class, stable codes, messages that say what to check.

import { NodemeshError } from '../util/errors';

/** Stable datapath error codes; never renamed once shipped. */
export type DatapathErrorCode =
  | 'NM_DATAPATH_NO_ADDON'
  | 'NM_DATAPATH_NO_OBJECT'
  | 'NM_DATAPATH_NO_BTF'
  | 'NM_DATAPATH_NO_CGROUP2'
  | 'NM_DATAPATH_NO_PRIVILEGE'
  | 'NM_DATAPATH_BPFFS'
  | 'NM_DATAPATH_LOAD'
  | 'NM_DATAPATH_ATTACH'
  | 'NM_DATAPATH_NETNS_MISSING'
  | 'NM_DATAPATH_NETNS'
  | 'NM_DATAPATH_LISTEN'
  | 'NM_DATAPATH_POD_EXISTS'
  | 'NM_DATAPATH_BAD_SPEC'
  | 'NM_DATAPATH_MAP'
  | 'NM_DATAPATH_CLOSED';

export class DatapathError extends NodemeshError {
  declare readonly code: DatapathErrorCode;

  constructor(code: DatapathErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(code, message, options);
  }
}

/** The `code` ('EPERM', 'ENOENT', ...) of a native errno error, if it is one. */
export function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('E') ? code : undefined;
}

/** Native errors carry their own hint (e.g. missing capabilities); keep it visible in wrapped errors. */
export function nativeHint(err: unknown): string | undefined {
  const hint = (err as { hint?: unknown } | null)?.hint;
  return typeof hint === 'string' ? hint : undefined;
}
