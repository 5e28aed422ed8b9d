// Client for an agent's enrollment API (used by `nodemesh lab`, the CNI plugin and tests).

import http from 'node:http';
import type { EnrollRequest, EnrolledPod, ErrorBody } from './protocol';
import { EnrollError } from './protocol';

export interface RawResponse {
  status: number;
  body: string;
}

/** One HTTP request over a unix socket; resolves with status and body text whatever the status. */
export function unixRequest(socketPath: string, method: string, path: string, body?: string, timeoutMs = 10_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath,
        method,
        path,
        headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${socketPath} ${method} ${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

function fail(res: RawResponse): never {
  let parsed: ErrorBody | undefined;
  try {
    parsed = JSON.parse(res.body) as ErrorBody;
  } catch {
    // not JSON: report raw
  }
  const code = parsed?.error?.code ?? 'NM_ENROLL_HTTP_ERROR';
  const message = parsed?.error?.message ?? `enrollment API answered ${res.status}: ${res.body.slice(0, 200)}`;
  throw new EnrollError(code, res.status, message);
}

export class EnrollClient {
  constructor(private readonly socketPath: string) {}

  async enroll(req: EnrollRequest): Promise<EnrolledPod> {
    const res = await unixRequest(this.socketPath, 'POST', '/v1/pods', JSON.stringify(req));
    if (res.status !== 200) fail(res);
    return JSON.parse(res.body) as EnrolledPod;
  }

  async unenroll(uid: string): Promise<void> {
    const res = await unixRequest(this.socketPath, 'DELETE', `/v1/pods/${encodeURIComponent(uid)}`);
    if (res.status !== 200) fail(res);
  }

  async list(): Promise<EnrolledPod[]> {
    const res = await unixRequest(this.socketPath, 'GET', '/v1/pods');
    if (res.status !== 200) fail(res);
    return (JSON.parse(res.body) as { pods: EnrolledPod[] }).pods;
  }
}
