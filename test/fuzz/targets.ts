// The fuzz targets, in the order CI runs them. Each name is a module in targets/ (its header comment states
// the invariant in full) and a corpus directory in corpus/ (seeds/, regressions/, crashes/).
//
// This file imports nothing: the engine reads it before instrumenting, and whatever it loaded would escape
// the instrumentation.

export interface TargetEntry {
  name: string;
  /** The invariant in one line, for the run summary. */
  invariant: string;
  /** npm packages instrumented besides nodemesh's own compiled code, when the target's input runs through them. */
  packages?: string[];
  /** Set while the code to fuzz is not on this branch: the target is listed in the summary, not run. */
  placeholder?: string;
  /** Where the module is, under test/fuzz/ (default targets/). */
  dir?: string;
  /** Instrument the target module itself too (the engine's self-tests, whose planted bugs are in it). */
  instrumentSelf?: boolean;
}

export const TARGETS: readonly TargetEntry[] = [
  { name: 'h2-frames', invariant: 'FrameReader + HpackDecoder + header validation on a server byte stream throw only H2ProtocolError/HpackError; frames and blocks within the advertised bounds' },
  { name: 'hpack', invariant: 'HpackDecoder throws only HpackError, keeps its table within the size limit, and decodes what HpackEncoder encodes' },
  { name: 'hbone-connect', invariant: "a CONNECT's header list is accepted only with a well-formed :authority that parseAuthority turns into a valid IP and port; never a throw" },
  { name: 'enroll-request', invariant: 'parseEnrollRequest throws only EnrollError (400) and returns only valid names, absolute paths and IP addresses' },
  { name: 'xds-resources', invariant: 'decodeResource throws only XdsResourceError; what it accepts is well-formed agent state' },
  { name: 'config-yaml', invariant: 'parseYamlSource never throws; every issue has a file line within the text; accepted objects validate again' },
  { name: 'config-objects', invariant: 'validateDocument never throws on any JSON document; it returns ok, invalid with issues, or ignored' },
  { name: 'http-sniff', invariant: 'sniff never throws, stops asking for more past its bounds, and agrees with itself on prefixes' },
  { name: 'http-headers', invariant: 'hop-by-hop stripping, raw-pair folding and grpc-timeout parsing never throw and keep their contracts' },
  { name: 'http-router', invariant: "the router's matching, prefix rewrite and redirect helpers never throw and keep Gateway API path semantics" },
  { name: 'http1-server', invariant: "raw bytes through Node's HTTP/1.1 server as the agent configures it (strict parser, 60 KiB heads): no crash, no hang, bounded memory" },
  { name: 'cni-stdin', invariant: "nodemesh-cni's stdin (network configuration and prevResult) and environment give a result or one line of CNI error JSON, never a throw" },
];

/** Targets with planted bugs: the tier first shows that the engine finds them (a finding, a hang). */
export const SELF_TESTS: readonly TargetEntry[] = [
  { name: 'planted-bug', invariant: 'throws on inputs starting with a magic word, which only compare feedback finds fast', dir: 'selftest', instrumentSelf: true },
  { name: 'planted-hang', invariant: 'loops forever on an input starting with H', dir: 'selftest', instrumentSelf: true },
];

export function targetEntry(name: string): TargetEntry {
  const e = [...TARGETS, ...SELF_TESTS].find((t) => t.name === name);
  if (!e) throw new Error(`no fuzz target "${name}" (targets: ${TARGETS.map((t) => t.name).join(', ')})`);
  return e;
}
