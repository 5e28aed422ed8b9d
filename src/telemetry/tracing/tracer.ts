// One thread's tracer: the sampling policy, the id source, where finished spans go, and one OTLP resource
// per local workload (the span's `service.name` is the workload's, as Istio names it: `app.namespace`).

import { Counter, type Registry } from 'prom-client';
import { Sampler, type SamplingConfig } from './sampling';
import type { SpanSink } from './span-queue';
import type { SpanRecord, SpanResource } from './span';
import { IdSource } from './trace-context';

export interface TracerOptions {
  sampling: SamplingConfig;
  /** Where recorded spans go; null: tracing is off (no header is read or written). */
  sink: SpanSink | null;
  registry: Registry;
  /** This agent's node, a resource attribute of every span. */
  node?: string;
  /** Tests: a fixed random source for sampling. */
  random?: () => number;
}

interface ResourceOwner {
  uid: string;
  name: string;
  namespace: string;
  workloadName: string;
  labels: Record<string, string>;
}

/** Pods come and go; the cache forgets everything past this many (the next span rebuilds its entry). */
const MAX_RESOURCES = 4096;

export class Tracer {
  readonly sampler: Sampler;
  readonly ids = new IdSource();
  private readonly recorded: Counter<'kept'>;
  readonly enabled: boolean;
  readonly keepFailures: boolean;
  private readonly resources = new Map<string, SpanResource>();

  constructor(private readonly o: TracerOptions) {
    this.sampler = new Sampler(o.sampling, o.random);
    this.recorded = new Counter({
      name: 'nodemesh_tracing_spans_recorded_total',
      help: 'Spans this agent recorded, by why they were kept (sampled; failure: not sampled, but the request failed)',
      labelNames: ['kept'],
      registers: [o.registry],
    });
    this.enabled = o.sink !== null;
    this.keepFailures = o.sampling.keepFailures;
  }

  record(span: SpanRecord, kept: 'sampled' | 'failure'): void {
    this.recorded.inc({ kept });
    this.o.sink?.record(span);
  }

  resourceOf(pod: ResourceOwner): SpanResource {
    let r = this.resources.get(pod.uid);
    if (r !== undefined) return r;
    if (this.resources.size >= MAX_RESOURCES) this.resources.clear();
    const app = pod.labels['app.kubernetes.io/name'] ?? pod.labels.app ?? pod.workloadName;
    const attributes: SpanResource['attributes'] = [
      ['service.name', `${app}.${pod.namespace}`],
      ['service.namespace', pod.namespace],
      ['k8s.namespace.name', pod.namespace],
      ['k8s.pod.name', pod.name],
      ['k8s.pod.uid', pod.uid],
      ['nodemesh.workload', pod.workloadName],
    ];
    const version = pod.labels['app.kubernetes.io/version'] ?? pod.labels.version;
    if (version !== undefined) attributes.push(['service.version', version]);
    if (this.o.node) attributes.push(['k8s.node.name', this.o.node]);
    r = { key: pod.uid, attributes };
    this.resources.set(pod.uid, r);
    return r;
  }
}
