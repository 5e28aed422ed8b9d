// Stable service VIPs from 198.18.128.0/17 for Services that do not set spec.clusterIP.

import { createHash } from 'node:crypto';
import { ControlPlaneError, CP_ERR } from './errors';

export const VIP_CIDR = '198.18.128.0/17';
const BASE = (198 << 24) | (18 << 16) | (128 << 8); // 198.18.128.0
const SIZE = 1 << 15;

function toIp(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function toInt(ip: string): number | undefined {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

export function inVipRange(ip: string): boolean {
  const n = toInt(ip);
  return n !== undefined && n >>> 15 === BASE >>> 15;
}

/**
 * Picks each service's VIP from a hash of namespace/name, probing linearly on collision.
 * Stable: a service keeps its VIP while it exists (sticky), and a fresh process given the same services
 * computes the same VIPs (allocation runs in sorted key order), so restarts do not move VIPs.
 * Offsets 0 and SIZE-1 (network/broadcast look-alikes) are never handed out.
 */
export class VipAllocator {
  private readonly byKey = new Map<string, string>();

  /** `services`: key (namespace/name) -> explicit clusterIP or undefined. Returns key -> VIP. */
  assign(services: Map<string, string | undefined>): Map<string, string> {
    for (const k of [...this.byKey.keys()]) if (!services.has(k) || services.get(k) !== undefined) this.byKey.delete(k);
    const taken = new Set<string>();
    for (const ip of services.values()) if (ip !== undefined) taken.add(ip);
    for (const ip of this.byKey.values()) taken.add(ip);
    const out = new Map<string, string>();
    for (const key of [...services.keys()].sort()) {
      const explicit = services.get(key);
      if (explicit !== undefined) {
        out.set(key, explicit);
        continue;
      }
      let vip = this.byKey.get(key);
      if (vip === undefined) {
        vip = this.pick(key, taken);
        this.byKey.set(key, vip);
        taken.add(vip);
      }
      out.set(key, vip);
    }
    return out;
  }

  private pick(key: string, taken: Set<string>): string {
    const start = createHash('sha256').update(key).digest().readUInt32BE(0) % SIZE;
    for (let i = 0; i < SIZE; i++) {
      const off = (start + i) % SIZE;
      if (off === 0 || off === SIZE - 1) continue;
      const ip = toIp((BASE + off) >>> 0);
      if (!taken.has(ip)) return ip;
    }
    throw new ControlPlaneError(CP_ERR.VIP_EXHAUSTED, `no free VIP left in ${VIP_CIDR} for Service ${key}`, {
      hint: 'set spec.clusterIP on some Services',
    });
  }
}
