// IP address text as config and xDS carry it. Node's isIP also takes an IPv6 zone index ("fe80::1%eth0"): it names
// an interface of one host, so it means nothing in a pod's address, a Service's VIP or a mesh-wide policy range.

import { isIP } from 'node:net';

/** 4 or 6 for an IPv4 or IPv6 address without a zone index, else 0. */
export function ipFamily(s: string): 0 | 4 | 6 {
  return s.includes('%') ? 0 : (isIP(s) as 0 | 4 | 6);
}

/** Why `s` is not an address (for an error that says what to fix). */
export function notAnAddress(s: string): string {
  return s.includes('%') && isIP(s) !== 0
    ? `"${s}" has a zone index (%${s.slice(s.indexOf('%') + 1)}), which names one host's interface: give the address alone`
    : `"${s}" is not an IPv4 or IPv6 address`;
}

/** The canonical text of an address (IPv6 compressed, as the API writes pod IPs): one spelling per address. */
export function canonicalIp(ip: string): string {
  return ip.includes(':') ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip;
}
