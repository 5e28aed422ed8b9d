// Checks that src/datapath/abi.ts agrees with bpf/include/nodemesh_abi.h: constants, struct sizes, offsets.
// The header is compiled with gcc so the numbers are the compiler's, not a second hand-written copy.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as abi from '../../src/datapath/abi';
import { repoRoot } from '../../src/datapath/native';
import * as types from '../../src/datapath/types';

const header = path.join(repoRoot(), 'bpf', 'include', 'nodemesh_abi.h');

/** Every numeric #define NM_* in the header, with the TS value it must equal. */
function tsConstants(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(abi)) if (/^NM_[A-Z0-9_]+$/.test(k) && typeof v === 'number') out[k] = v;
  for (const s of abi.NM_STATS) out[s.macro] = s.code;
  return out;
}

const FIELDS: [string, string, number][] = [
  ['struct nm_addr', '', abi.NM_ADDR.size],
  ['struct nm_addr', 'ip', abi.NM_ADDR.ip],
  ['struct nm_addr', 'port', abi.NM_ADDR.port],
  ['struct nm_addr', 'family', abi.NM_ADDR.family],
  ['struct nm_addr', 'pad', abi.NM_ADDR.pad],
  ['struct nm_pod', '', abi.NM_POD.size],
  ['struct nm_pod', 'flags', abi.NM_POD.flags],
  ['struct nm_pod', 'pad', abi.NM_POD.pad],
  ['struct nm_pod', 'redirected', abi.NM_POD.redirected],
  ['struct nm_pod', 'fail_open', abi.NM_POD.failOpen],
  ['struct nm_pod', 'fail_closed_denied', abi.NM_POD.failClosedDenied],
  ['struct nm_tuple_key', '', abi.NM_TUPLE_KEY.size],
  ['struct nm_tuple_key', 'netns_cookie', abi.NM_TUPLE_KEY.netnsCookie],
  ['struct nm_tuple_key', 'src', abi.NM_TUPLE_KEY.src],
  ['struct nm_tuple_key', 'dst', abi.NM_TUPLE_KEY.dst],
  ['struct nm_steer_key', '', abi.NM_STEER_KEY.size],
  ['struct nm_steer_key', 'ip', abi.NM_STEER_KEY.ip],
  ['struct nm_steer_key', 'family', abi.NM_STEER_KEY.family],
  ['struct nm_steer_key', 'kind', abi.NM_STEER_KEY.kind],
  ['struct nm_steer_key', 'pad', abi.NM_STEER_KEY.pad],
  ['struct nm_config', '', abi.NM_CONFIG.size],
  ['struct nm_config', 'agent_cgroup_id', abi.NM_CONFIG.agentCgroupId],
  ['struct nm_config', 'mark', abi.NM_CONFIG.mark],
  ['struct nm_config', 'flags', abi.NM_CONFIG.flags],
];

function compileAndRun(): Record<string, number> {
  const text = fs.readFileSync(header, 'utf8');
  const macros = [...text.matchAll(/^#define\s+(NM_[A-Z0-9_]+)\s+(?:\(|\d)/gm)].map((m) => m[1]!);
  const lines = macros.map((m) => `  printf("\\"%s\\": %lld,\\n", "${m}", (long long)(${m}));`);
  for (const [s, f] of FIELDS) {
    const name = `${s.replace('struct ', '')}${f ? `.${f}` : ''}`;
    const expr = f ? `offsetof(${s}, ${f})` : `sizeof(${s})`;
    lines.push(`  printf("\\"%s\\": %zu,\\n", "${name}", ${expr});`);
  }
  const src = `#include <stddef.h>\n#include <stdio.h>\n#include "${header}"\nint main(void) {\n  printf("{\\n");\n${lines.join('\n')}\n  printf("\\"_end\\": 0}\\n");\n  return 0;\n}\n`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nm-abi-'));
  try {
    fs.writeFileSync(path.join(dir, 'abi.c'), src);
    execFileSync('gcc', ['-Wall', '-Werror', '-o', path.join(dir, 'abi'), path.join(dir, 'abi.c')], { stdio: 'pipe' });
    return JSON.parse(execFileSync(path.join(dir, 'abi'), { encoding: 'utf8' })) as Record<string, number>;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const haveGcc = (() => {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

test('nodemesh_abi.h and abi.ts agree', { skip: haveGcc ? false : 'gcc not installed' }, () => {
  const c = compileAndRun();
  const ts = tsConstants();
  const cMacros = Object.keys(c).filter((k) => k.startsWith('NM_'));
  // every constant in the header exists in TS with the same value, and vice versa
  for (const k of cMacros) assert.equal(ts[k], c[k], `${k}: header says ${c[k]}, abi.ts says ${ts[k]}`);
  for (const k of Object.keys(ts)) assert.ok(k in c, `abi.ts has ${k}, the header does not`);
  for (const [s, f, v] of FIELDS) {
    const name = `${s.replace('struct ', '')}${f ? `.${f}` : ''}`;
    assert.equal(v, c[name], `${name}: header says ${c[name]}, abi.ts says ${v}`);
  }
  // stat codes are dense 0..N-1 and fit the stats map
  assert.deepEqual(abi.NM_STATS.map((s) => s.code), [...Array(abi.NM_STAT__COUNT).keys()]);
  assert.ok(abi.NM_STAT__COUNT <= abi.NM_STATS_MAX);
});

test('the datapath contract constants match the ABI', () => {
  assert.equal(types.PORT_OUTBOUND, abi.NM_PORT_OUTBOUND);
  assert.equal(types.PORT_INBOUND, abi.NM_PORT_INBOUND);
  assert.equal(types.PORT_HBONE, abi.NM_PORT_HBONE);
  assert.equal(types.AGENT_MARK, abi.NM_AGENT_MARK);
});

test('IP text round-trips through the 16-byte map encoding', () => {
  const b = Buffer.alloc(16);
  const cases: [string, 4 | 6, string][] = [
    ['198.18.0.1', 4, '198.18.0.1'],
    ['::ffff:127.0.0.1', 4, '127.0.0.1'],
    ['::1', 6, '::1'],
    ['::', 6, '::'],
    ['2001:db8::8:800:200c:417a', 6, '2001:db8::8:800:200c:417a'],
    ['2001:DB8:0:0:1::1', 6, '2001:db8::1:0:0:1'],
    ['fe80::1%eth0', 6, 'fe80::1'],
    ['64:ff9b::198.18.0.9', 6, '64:ff9b::c612:9'],
    ['1:2:3:4:5:6:7:8', 6, '1:2:3:4:5:6:7:8'],
    ['1::', 6, '1::'],
  ];
  for (const [text, fam, back] of cases) {
    assert.equal(abi.writeIp(b, 0, text), fam, text);
    assert.equal(abi.readIp(b, 0, fam), back, text);
  }
  for (const bad of ['', '1.2.3', '1.2.3.256', '1.2.3.4.5', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', 'x::1', '1:']) {
    assert.equal(abi.writeIp(b, 0, bad), 0, bad);
  }
  assert.deepEqual([...abi.steerKey('10.1.2.3', abi.NM_STEER_INBOUND)!.key], [10, 1, 2, 3, ...Array(12).fill(0), 4, 1, 0, 0]);
});

test('tuple keys use host-order ports and the netns cookie', () => {
  const k = Buffer.alloc(abi.NM_TUPLE_KEY.size);
  assert.ok(abi.writeTupleKey(k, 0x1122334455667788n, { ip: '127.0.0.1', port: 40000 }, { ip: '127.0.0.1', port: 15001 }));
  assert.equal(k.readBigUInt64LE(0), 0x1122334455667788n);
  assert.equal(k.readUInt16LE(abi.NM_TUPLE_KEY.src + abi.NM_ADDR.port), 40000);
  assert.equal(k[abi.NM_TUPLE_KEY.dst + abi.NM_ADDR.family], 4);
  assert.deepEqual(abi.readAddr(k, abi.NM_TUPLE_KEY.dst), { ip: '127.0.0.1', port: 15001, family: 4 });
});
