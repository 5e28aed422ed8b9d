// What an agent taking over from a running one waits for before it serves, and how it tells the predecessor
// (the protocol is in handover.ts).

import type { ProxyRuntime } from '../proxy/runtime';
import type { Logger } from '../telemetry/logger';
import type { XdsClient } from '../xds/ads-client';
import type { HandoverChannel } from './handover';

/**
 * A successor's listeners accept as soon as they exist, so before that it must enforce what its predecessor
 * enforces: the config, with its policies (saved by the predecessor, or from the control plane). The
 * predecessor serves meanwhile, however long this takes. Resolves false when `stopped()` ends the wait.
 */
export async function waitForConfig(xds: XdsClient | null, stopped: () => boolean): Promise<boolean> {
  while (xds && !xds.synced()) {
    if (stopped()) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/**
 * Once every pod's 15008 presents a certificate (or has settled without one, as the predecessor's had), tells
 * the predecessor; it stops accepting and the node's names and ports move here. A predecessor that dies or
 * hangs instead is no reason to stop: its listeners closed with it, or it keeps serving beside this one.
 */
export async function takeOver(channel: HandoverChannel, predecessor: number, runtime: ProxyRuntime, log: Logger, step: (what: string) => void): Promise<void> {
  step("waiting for every pod's 15008 (certificates)");
  await runtime.hboneSettled();
  step('waiting for the running agent to stop accepting');
  channel.send({ type: 'ready' });
  try {
    await channel.next(['committed'], 30_000);
    log.info({ predecessor }, 'the previous agent stopped accepting; this one serves the node');
  } catch (err) {
    log.warn({ err, predecessor }, 'the previous agent did not confirm the handover; serving the node anyway');
  }
}
