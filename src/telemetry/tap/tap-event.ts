// One request as the live tap shows it: what agents send the control plane, and the dashboard and CLI
// receive. Plain data with no imports, so the dashboard's UI build types its API with it too.

/** One request as the tap shows it. */
export interface TapEvent {
  /** Unix ms when the request started. */
  time: number;
  node: string;
  reporter: 'source' | 'destination';
  sourceWorkload: string;
  sourceNamespace: string;
  destinationWorkload: string;
  destinationNamespace: string;
  destinationService: string;
  method: string;
  authority: string;
  path: string;
  status: number;
  grpcStatus: string | null;
  flags: string;
  route: string | null;
  cluster: string | null;
  endpoint: string | null;
  latencyMs: number;
  mtls: boolean;
  requestId: string;
  /** The trace this request belongs to, and whether its spans were kept (sampled or failed). */
  traceId: string | null;
  traceKept: boolean;
}
