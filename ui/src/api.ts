// The control plane's dashboard API, typed as the server defines it, and a polling hook.
import { useEffect, useState } from 'react';

// The API's shapes are the server's own (one definition, type-only: nothing of the server is bundled).
export type {
  AgentView,
  AttributeValue,
  GraphEdge,
  GraphNode,
  RouteView,
  ServiceView,
  Signals,
  SpanView as Span,
  TapEvent,
  TraceSummary,
  WorkloadView,
} from '../../src/controlplane/observe/dashboard-api';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function get<T>(path: string): Promise<T> {
  const r = await fetch(path);
  const body = (await r.json().catch(() => ({}))) as { error?: { code: string; message: string } };
  if (!r.ok) throw new ApiError(r.status, body.error?.code ?? 'HTTP', body.error?.message ?? `HTTP ${r.status}`);
  return body as T;
}

/** GETs `path` now and every `everyMs`; keeps the last good answer while a poll fails. */
export function usePoll<T>(path: string | null, everyMs = 3000): { data: T | null; error: string | null } {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (path === null) return;
    let stop = false;
    const run = (): void => {
      get<T>(path).then(
        (d) => {
          if (stop) return;
          setData(d);
          setError(null);
        },
        (e: Error) => !stop && setError(e.message),
      );
    };
    run();
    const t = setInterval(run, everyMs);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [path, everyMs]);
  return { data, error };
}
