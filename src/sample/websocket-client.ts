// `nodemesh sample ws-client`: opens a WebSocket to the http sample's /ws, sends N messages one at a time and
// checks each echo; one JSON line says who answered the upgrade and how many echoes came back intact.

import { randomBytes } from 'node:crypto';

export interface WsClientOptions {
  /** ws://host:port/ws */
  url: string;
  count: number;
  /** Text messages carry this; binary ones (`binaryBytes` > 0) that many random bytes. */
  message?: string;
  binaryBytes?: number;
  headers?: Record<string, string>;
  timeoutMs: number;
}

export interface WsClientResult {
  ok: boolean;
  url: string;
  /** The 101's x-served-by (the sample http server's pod). */
  servedBy?: string;
  sent: number;
  echoed: number;
  ms: number;
  /** The close code the server sent, when it closed first. */
  closeCode?: number;
  error?: string;
}

export async function runWsClient(opts: WsClientOptions): Promise<WsClientResult> {
  // Loaded here: the other sample commands do not need it.
  const { WebSocket } = await import('ws');
  const t0 = process.hrtime.bigint();
  const r: WsClientResult = { ok: false, url: opts.url, sent: 0, echoed: 0, ms: 0 };
  return new Promise((resolve) => {
    const ws = new WebSocket(opts.url, { headers: opts.headers, handshakeTimeout: opts.timeoutMs });
    let expected: Buffer | string = '';
    let done = false;
    const finish = (error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      r.ms = Math.round((Number(process.hrtime.bigint() - t0) / 1e6) * 1000) / 1000;
      r.ok = !error && r.echoed === opts.count;
      if (error) r.error = error;
      ws.removeAllListeners();
      ws.on('error', () => undefined);
      ws.terminate();
      resolve(r);
    };
    const timer = setTimeout(() => finish(`timed out after ${opts.timeoutMs} ms (${r.echoed} of ${opts.count} echoes)`), opts.timeoutMs);
    const sendNext = (): void => {
      if (r.sent === opts.count) {
        ws.close(1000);
        return;
      }
      expected = opts.binaryBytes ? randomBytes(opts.binaryBytes) : `${opts.message ?? 'hello'} ${r.sent}`;
      ws.send(expected, { binary: typeof expected !== 'string' });
      r.sent++;
    };
    ws.on('upgrade', (res) => {
      const by = res.headers['x-served-by'];
      if (typeof by === 'string') r.servedBy = by;
    });
    ws.on('open', sendNext);
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const same = typeof expected === 'string' ? !isBinary && data.toString('utf8') === expected : isBinary && data.equals(expected);
      if (!same) return finish(`echo ${r.echoed} differs from what was sent`);
      r.echoed++;
      sendNext();
    });
    ws.on('unexpected-response', (_req, res) => finish(`the upgrade was answered ${res.statusCode ?? 0}, not 101`));
    ws.on('close', (code) => {
      if (code !== 1000) r.closeCode = code;
      finish(r.echoed === opts.count ? undefined : `closed (${code}) after ${r.echoed} of ${opts.count} echoes`);
    });
    ws.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
  });
}
