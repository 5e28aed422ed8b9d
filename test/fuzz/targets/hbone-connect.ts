// Fuzz target hbone-connect: the HBONE server's request validation, as it runs for every new stream: the
// decoded header list through validateRequest (RFC 9113 §8.2-8.5 malformed-message rules), then, for a
// CONNECT, parseAuthority on its :authority.
//
// Invariant:
// - validateRequest and parseAuthority never throw;
// - an accepted request has a :method, and a plain CONNECT has an :authority and no :scheme or :path;
// - the accepted header object has no prototype (a field named __proto__ or constructor is just a field);
// - parseAuthority accepts only an IPv4 or IPv6 literal (IPv6 in brackets) with a port 1-65535, and what it
//   returns formats back (formatAuthority) to a string it parses to the same endpoint.

import net from 'node:net';
import { validateRequest } from '../../../src/proxy/hbone/h2/headers';
import { formatAuthority, parseAuthority } from '../../../src/proxy/hbone/protocol';
import { FuzzInput } from '../input';
import { check, type FuzzTarget } from '../target';

const NAMES = [':method', ':authority', ':scheme', ':path', ':protocol', 'te', 'connection', 'x-nodemesh-detected', 'host', '__proto__'];

function checkAuthority(raw: string | undefined): void {
  const ep = parseAuthority(raw);
  if (ep === null) return;
  check(net.isIP(ep.ip) !== 0, `parseAuthority(${JSON.stringify(raw)}) gave the non-IP ${JSON.stringify(ep.ip)}`);
  check(Number.isInteger(ep.port) && ep.port >= 1 && ep.port <= 65535, `parseAuthority(${JSON.stringify(raw)}) gave port ${ep.port}`);
  const again = parseAuthority(formatAuthority(ep));
  check(again !== null && again.ip === ep.ip && again.port === ep.port, `${JSON.stringify(raw)} does not survive formatAuthority`);
}

function run(data: Buffer): void {
  const input = new FuzzInput(data);
  if (input.bool()) {
    checkAuthority(input.rest().toString('latin1'));
    return;
  }
  const fields: Array<[string, string]> = [];
  while (input.remaining > 0 && fields.length < 32) {
    const name = input.bool() ? input.pick(NAMES) : input.string(24);
    fields.push([name, input.string(64)]);
  }
  const h = validateRequest(fields);
  if (typeof h === 'string') return;
  check(Object.getPrototypeOf(h) === null, 'the header object has a prototype');
  const method = h[':method'];
  check(method !== undefined, 'a request without :method was accepted');
  if (method === 'CONNECT' && h[':protocol'] === undefined) {
    check(h[':authority'] !== undefined && h[':scheme'] === undefined && h[':path'] === undefined, 'a malformed CONNECT was accepted');
    checkAuthority(h[':authority']);
  }
}

export const target: FuzzTarget = {
  mode: 'sync',
  maxLen: 1024,
  dict: ['CONNECT', '[::1]:', '127.0.0.1:', ':8080', '[', ']', '::ffff:', '65535', '65536', 'trailers', 'GET', 'http', '/'],
  run,
};
