// `nodemesh sample grpc`: the Echo service (protos/nodemesh/sample/echo.proto): unary, server-streaming and bidi
// calls that say which pod and version answered, with a delay and a final grpc-status chosen by the request.

import os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protosDir } from '../util/protos-dir';
import { SampleError } from './errors';

export interface EchoRequest {
  message: string;
  status?: number;
  status_message?: string;
  delay_ms?: number;
  responses?: number;
  interval_ms?: number;
}

export interface EchoResponse {
  message: string;
  pod: string;
  address: string;
  version: string;
  name: string;
  index: number;
  metadata: Record<string, string>;
}

/** What the handlers use of any kind of server call. */
interface SurfaceCall {
  readonly cancelled: boolean;
  readonly metadata: grpc.Metadata;
  getDeadline(): grpc.Deadline;
  on(event: 'cancelled', f: () => void): unknown;
  off(event: 'cancelled', f: () => void): unknown;
}

export const ECHO_SERVICE = 'nodemesh.sample.Echo';
export const MAX_DELAY_MS = 60_000;
export const MAX_RESPONSES = 10_000;
export const DEFAULT_RESPONSES = 3;
/** Trailing metadata on every call, answered or failed: who served it even when no message came. */
export const SERVED_BY = 'x-served-by';
export const SERVED_VERSION = 'x-served-version';

let cached: grpc.ServiceClientConstructor | undefined;

/** The Echo service constructor (client) whose `.service` is the server-side definition. */
export function echoService(): grpc.ServiceClientConstructor {
  if (cached) return cached;
  const def = protoLoader.loadSync('nodemesh/sample/echo.proto', { includeDirs: [protosDir('nodemesh/sample/echo.proto')], keepCase: true, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { nodemesh: { sample: { Echo: grpc.ServiceClientConstructor } } };
  cached = pkg.nodemesh.sample.Echo;
  return cached;
}

export interface GrpcEchoServerOptions {
  host?: string;
  port: number;
  /** Defaults to $POD_NAME, then the host name (a pod's, in Kubernetes). */
  pod?: string;
  version?: string;
  name?: string;
}

export interface GrpcEchoStats {
  /** Calls started. */
  calls: number;
  /** Calls whose handler is still working (waiting or streaming). */
  active: number;
  /** Calls that stopped early because the client cancelled or the deadline passed. */
  cancelled: number;
}

export interface GrpcEchoServer {
  address: string;
  port: number;
  stats: GrpcEchoStats;
  close(): Promise<void>;
}

/** The request's fields out of range, as the status to answer with (INVALID_ARGUMENT), or undefined. */
function invalid(req: EchoRequest): grpc.StatusObject | undefined {
  const problems: string[] = [];
  if (!Number.isInteger(req.status) || (req.status ?? 0) < 0 || (req.status ?? 0) > 16) problems.push(`status ${req.status} is not a grpc-status code (0..16)`);
  if ((req.delay_ms ?? 0) > MAX_DELAY_MS) problems.push(`delay_ms ${req.delay_ms} is over ${MAX_DELAY_MS}`);
  if ((req.interval_ms ?? 0) > MAX_DELAY_MS) problems.push(`interval_ms ${req.interval_ms} is over ${MAX_DELAY_MS}`);
  if ((req.responses ?? 0) > MAX_RESPONSES) problems.push(`responses ${req.responses} is over ${MAX_RESPONSES}`);
  if (problems.length === 0) return undefined;
  const err = new SampleError('NM_SAMPLE_BAD_FIELD', `EchoRequest: ${problems.join('; ')}`);
  return { code: grpc.status.INVALID_ARGUMENT, details: err.message, metadata: new grpc.Metadata() };
}

/**
 * Waits `ms` unless the call ends first: resolves false when the client cancelled or the call's
 * deadline passed (grpc-js has then already answered DEADLINE_EXCEEDED), so the handler stops.
 */
function pause(call: SurfaceCall, ms: number): Promise<boolean> {
  if (call.cancelled) return Promise.resolve(false);
  if (ms <= 0) return Promise.resolve(true);
  const d = call.getDeadline();
  const deadline = d instanceof Date ? d.getTime() : d;
  const left = deadline - Date.now();
  return new Promise((resolve) => {
    const done = (full: boolean): void => {
      clearTimeout(timer);
      call.off('cancelled', onCancel);
      resolve(full && !call.cancelled);
    };
    const onCancel = (): void => done(false);
    const timer = setTimeout(() => done(left > ms), Math.max(0, Math.min(ms, left)));
    call.on('cancelled', onCancel);
  });
}

export async function startGrpcEchoServer(opts: GrpcEchoServerOptions): Promise<GrpcEchoServer> {
  const host = opts.host ?? '0.0.0.0';
  const pod = opts.pod ?? process.env.POD_NAME ?? os.hostname();
  const version = opts.version ?? '';
  const name = opts.name ?? '';
  const stats: GrpcEchoStats = { calls: 0, active: 0, cancelled: 0 };
  const server = new grpc.Server();
  const bindHost = host.includes(':') ? `[${host}]` : host;
  let address = '';

  const served = (): grpc.Metadata => {
    const m = new grpc.Metadata();
    m.set(SERVED_BY, pod);
    m.set(SERVED_VERSION, version);
    return m;
  };
  const reply = (call: SurfaceCall, req: EchoRequest, index: number): EchoResponse => {
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(call.metadata.getMap())) if (typeof v === 'string') metadata[k] = v;
    return { message: req.message, pod, address, version, name, index, metadata };
  };
  const asked = (req: EchoRequest): grpc.StatusObject | undefined =>
    req.status ? { code: req.status, details: req.status_message || `status ${req.status} as asked`, metadata: served() } : undefined;
  /** Counts a call from start to end; `end(false)` records that it stopped early. */
  const track = (): ((completed: boolean) => void) => {
    stats.calls++;
    stats.active++;
    let ended = false;
    return (completed) => {
      if (ended) return;
      ended = true;
      stats.active--;
      if (!completed) stats.cancelled++;
    };
  };

  server.addService(echoService().service, {
    Echo: async (call: grpc.ServerUnaryCall<EchoRequest, EchoResponse>, cb: grpc.sendUnaryData<EchoResponse>) => {
      const end = track();
      const req = call.request;
      const bad = invalid(req);
      if (bad) {
        end(true);
        return cb(bad);
      }
      if (!(await pause(call, req.delay_ms ?? 0))) return end(false);
      const status = asked(req);
      if (status) cb(status);
      else cb(null, reply(call, req, 0), served());
      end(true);
    },
    ServerStream: async (call: grpc.ServerWritableStream<EchoRequest, EchoResponse>) => {
      const end = track();
      const req = call.request;
      const bad = invalid(req);
      if (bad) {
        end(true);
        return void call.emit('error', bad);
      }
      const n = req.responses || DEFAULT_RESPONSES;
      if (!(await pause(call, req.delay_ms ?? 0))) return end(false);
      for (let i = 0; i < n; i++) {
        if (i > 0 && !(await pause(call, req.interval_ms ?? 0))) return end(false);
        if (call.cancelled) return end(false);
        call.write(reply(call, req, i));
      }
      const status = asked(req);
      if (status) call.emit('error', status);
      else call.end(served());
      end(true);
    },
    Bidi: (call: grpc.ServerDuplexStream<EchoRequest, EchoResponse>) => {
      const end = track();
      let index = 0;
      let over = false;
      const finish = (status?: grpc.StatusObject): void => {
        if (over) return;
        over = true;
        if (status) call.emit('error', status);
        else call.end(served());
        end(true);
      };
      // One request at a time: reading pauses while a delayed answer waits, so a client streaming
      // requests faster than they are answered meets HTTP/2 flow control, not a growing queue here.
      let work = Promise.resolve();
      call.on('data', (req: EchoRequest) => {
        call.pause();
        work = (async () => {
          const bad = invalid(req);
          if (bad) return finish(bad);
          if (!(await pause(call, req.delay_ms ?? 0))) {
            over = true;
            return end(false);
          }
          const status = asked(req);
          if (status) return finish(status);
          if (!over) call.write(reply(call, req, index++));
          call.resume();
        })();
      });
      // The client's half-close can be seen while the last request is still being answered.
      call.on('end', () => void work.then(() => finish()));
      call.on('cancelled', () => {
        over = true;
        end(false);
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${bindHost}:${opts.port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  address = `${bindHost}:${port}`;
  return {
    address,
    port,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 500).unref();
      }),
  };
}
