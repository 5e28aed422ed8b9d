// Which requests start a sampled trace: a caller's decision is honoured (parent-based, as Envoy and the
// OpenTelemetry SDKs do), else a percentage: per route, else per namespace, else the default (1 %, Istio's).
// Failed requests are kept apart from this decision (see the tracing layer).

import { NodemeshError } from '../../util/errors';

export const TRACING_ERR = {
  BAD_SAMPLING: 'NM_TRACING_BAD_SAMPLING',
  BAD_ENDPOINT: 'NM_TRACING_BAD_ENDPOINT',
} as const;

export class TracingConfigError extends NodemeshError<(typeof TRACING_ERR)[keyof typeof TRACING_ERR]> {}

export interface SamplingConfig {
  /** Percent of requests without a caller decision that start a sampled trace (0-100). Default 1. */
  defaultPercent: number;
  /** By route name (`ns/route/rule`, as in access lines and spans). Wins over the namespace. */
  routes: Record<string, number>;
  /** By namespace: the client's namespace on the source agent, the server's on the destination agent. */
  namespaces: Record<string, number>;
  /** Keep the spans of failed requests (5xx or a response flag) even when not sampled. Default true. */
  keepFailures: boolean;
}

export const DEFAULT_SAMPLING: SamplingConfig = { defaultPercent: 1, routes: {}, namespaces: {}, keepFailures: true };

function percent(v: string, what: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > 100) {
    throw new TracingConfigError(TRACING_ERR.BAD_SAMPLING, `${what}: "${v}" is not a percentage`, { hint: 'give a number from 0 to 100, e.g. 1 or 0.5' });
  }
  return n;
}

export function parseSamplingPercent(v: string): number {
  return percent(v, '--trace-sampling');
}

/**
 * One override: `namespace:NAME=PERCENT` or `route:NAME=PERCENT` (route names are `ns/route/rule`). Returns
 * the config with it added; a malformed one is an error that says what to write.
 */
export function addSamplingOverride(config: SamplingConfig, spec: string): SamplingConfig {
  const m = /^(namespace|route):([^=]+)=(.*)$/.exec(spec.trim());
  if (m === null) {
    throw new TracingConfigError(TRACING_ERR.BAD_SAMPLING, `--trace-sampling-override "${spec}" is not namespace:NAME=PERCENT or route:NAME=PERCENT`, {
      hint: 'e.g. namespace:payments=100 or route:default/checkout/rule-0=10',
    });
  }
  const value = percent(m[3]!, `--trace-sampling-override ${m[1]}:${m[2]}`);
  if (m[1] === 'namespace') return { ...config, namespaces: { ...config.namespaces, [m[2]!]: value } };
  return { ...config, routes: { ...config.routes, [m[2]!]: value } };
}

export class Sampler {
  private readonly routes: Map<string, number>;
  private readonly namespaces: Map<string, number>;

  constructor(readonly config: SamplingConfig, private readonly random: () => number = Math.random) {
    this.routes = new Map(Object.entries(config.routes));
    this.namespaces = new Map(Object.entries(config.namespaces));
  }

  /** The percentage that applies to a request of this route (or none yet) in this namespace. */
  percentFor(route: string | null, namespace: string): number {
    if (route !== null && this.routes.size > 0) {
      const r = this.routes.get(route);
      if (r !== undefined) return r;
    }
    if (this.namespaces.size > 0) {
      const n = this.namespaces.get(namespace);
      if (n !== undefined) return n;
    }
    return this.config.defaultPercent;
  }

  /** `parent`: the caller's decision, when it made one. */
  sample(parent: boolean | null, route: string | null, namespace: string): boolean {
    if (parent !== null) return parent;
    const p = this.percentFor(route, namespace);
    if (p >= 100) return true;
    if (p <= 0) return false;
    return this.random() * 100 < p;
  }
}
