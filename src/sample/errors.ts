// SampleError: bad requests to the sample workloads (query controls, headers, gRPC echo fields), each with a stable code.

import { NodemeshError } from '../util/errors';

/** Stable codes; never renamed once shipped (tests and scripts match on them). */
export type SampleErrorCode =
  /** A query control (`?delay`, `?status`, `?fail`, ...) of the http sample is out of range or malformed. */
  | 'NM_SAMPLE_BAD_QUERY'
  /** A request header the http sample reads (`x-fail-key`) is missing or too long. */
  | 'NM_SAMPLE_BAD_HEADER'
  /** A field of a gRPC EchoRequest is out of range. */
  | 'NM_SAMPLE_BAD_FIELD'
  /** A command-line flag of a sample command has a value it cannot use. */
  | 'NM_SAMPLE_BAD_ARG';

export class SampleError extends NodemeshError {
  declare readonly code: SampleErrorCode;
  constructor(code: SampleErrorCode, message: string, hint?: string) {
    super(code, message, { hint });
  }
}
