// OTLP traces on the wire (opentelemetry-proto, collector/trace/v1): ExportTraceServiceRequest out of our
// span records, and back (the control plane's receiver reads what agents, applications or collectors send).
//
// Written with our ProtoWriter (one buffer, no garbage per field) and read with protobufjs's Reader (already
// loaded for xDS), over the field numbers of the published schema, not generated code: the subset a tracer
// writes is small, and this keeps the agent from loading a second protobuf runtime. Field numbers: trace.proto, common.proto, resource.proto of opentelemetry-proto
// v1 (they never change within v1).

import protobuf from 'protobufjs';
import { ProtoWriter } from './proto-writer';
import { isIntAttribute, type AttributeValue, type SpanRecord, type SpanResource } from './span';

const LEN = 2;
const VARINT = 0;
const I64 = 1;
const I32 = 5;


/** Unix ms (fractional) as fixed64 nanoseconds, in two 32-bit halves (a double cannot hold 1e18 exactly). */
function writeNanos(w: ProtoWriter, field: number, ms: number): void {
  const whole = Math.floor(ms);
  // whole ms * 1e6 + the fraction's ns, split as (hi * 2^32 + lo) without BigInt: ms < 2^42, so
  // ms * 1e6 < 2^62 is carried in two parts below 2^53 each.
  const fracNs = Math.round((ms - whole) * 1e6);
  const msHi = Math.floor(whole / 0x100000000);
  const msLo = whole % 0x100000000;
  // (msHi * 2^32 + msLo) * 1e6 + fracNs
  const loFull = msLo * 1e6 + fracNs; // < 2^32 * 1e6 + 1e6 < 2^53
  const lo = loFull % 0x100000000;
  const hi = msHi * 1e6 + Math.floor(loFull / 0x100000000);
  w.fixed64(field, lo, hi);
}

function writeAnyValue(w: ProtoWriter, key: string, v: AttributeValue): void {
  if (typeof v === 'string') w.string(1, v);
  else if (typeof v === 'boolean') w.tag(2, VARINT).varint(v ? 1 : 0);
  else if (typeof v === 'number') {
    if (isIntAttribute(key) && Number.isInteger(v) && v >= 0) w.tag(3, VARINT).varint(v);
    else w.double(4, v);
  } else {
    // ArrayValue { repeated AnyValue values = 1 }
    const arr = w.begin(5);
    for (const s of v) {
      const item = w.begin(1);
      w.string(1, s);
      w.end(item);
    }
    w.end(arr);
  }
}

function writeAttributes(w: ProtoWriter, field: number, attrs: [string, AttributeValue][]): void {
  for (const [k, v] of attrs) {
    const kv = w.begin(field);
    w.string(1, k);
    const val = w.begin(2);
    writeAnyValue(w, k, v);
    w.end(val);
    w.end(kv);
  }
}

function writeSpan(w: ProtoWriter, s: SpanRecord): void {
  w.hexBytes(1, s.traceId);
  w.hexBytes(2, s.spanId);
  if (s.traceState) w.string(3, s.traceState);
  if (s.parentSpanId) w.hexBytes(4, s.parentSpanId);
  w.string(5, s.name);
  w.tag(6, VARINT).varint(s.kind);
  writeNanos(w, 7, s.startMs);
  writeNanos(w, 8, s.endMs);
  writeAttributes(w, 9, s.attributes);
  if (s.status.code !== 0 || s.status.message) {
    const st = w.begin(15);
    if (s.status.message) w.string(2, s.status.message);
    w.tag(3, VARINT).varint(s.status.code);
    w.end(st);
  }
  w.fixed32(16, s.flags);
}

export const SCOPE = { name: 'nodemesh', version: '0.1.0' };

/** ExportTraceServiceRequest: one ResourceSpans per resource, one ScopeSpans (nodemesh) in each. */
export function encodeExportRequest(spans: readonly SpanRecord[]): Uint8Array {
  const byResource = new Map<string, { resource: SpanResource; spans: SpanRecord[] }>();
  for (const s of spans) {
    let g = byResource.get(s.resource.key);
    if (g === undefined) byResource.set(s.resource.key, (g = { resource: s.resource, spans: [] }));
    g.spans.push(s);
  }
  const w = new ProtoWriter(spans.length * 1536 + 1024);
  for (const g of byResource.values()) {
    const rs = w.begin(1); // resource_spans
    const res = w.begin(1); // resource
    writeAttributes(w, 1, g.resource.attributes);
    w.end(res);
    const ss = w.begin(2); // scope_spans
    const scope = w.begin(1);
    w.string(1, SCOPE.name).string(2, SCOPE.version);
    w.end(scope);
    for (const s of g.spans) {
      const sp = w.begin(2);
      writeSpan(w, s);
      w.end(sp);
    }
    w.end(ss);
    w.end(rs);
  }
  return w.finish();
}

/** ExportTraceServiceResponse: empty (full success), or partial_success with the spans refused and why. */
export function encodeExportResponse(rejected = 0, message = ''): Uint8Array {
  const w = new ProtoWriter();
  if (rejected > 0 || message) {
    const ps = w.begin(1);
    if (rejected > 0) w.tag(1, VARINT).varint(rejected);
    if (message) w.string(2, message);
    w.end(ps);
  }
  return w.finish();
}

export function decodeExportResponse(buf: Uint8Array): { rejected: number; message: string } {
  const out = { rejected: 0, message: '' };
  readFields(buf, (r, field, wire) => {
    if (field !== 1 || wire !== LEN) return false;
    readFields(r.bytes(), (p, f, wt) => {
      if (f === 1 && wt === VARINT) out.rejected = Number(p.int64());
      else if (f === 2 && wt === LEN) out.message = p.string();
      else return false;
      return true;
    });
    return true;
  });
  return out;
}

/** A decoded span, as the receiver stores it: resource attributes folded in (service.name first of all). */
export interface ReceivedSpan extends Omit<SpanRecord, 'resource'> {
  resource: Record<string, AttributeValue>;
  scope: string;
}

/** Calls `fn` per field; `fn` returns false for a field it does not read, which is then skipped. */
function readFields(buf: Uint8Array, fn: (r: protobuf.Reader, field: number, wire: number) => boolean): void {
  const r = protobuf.Reader.create(buf);
  while (r.pos < r.len) {
    const t = r.uint32();
    const field = t >>> 3;
    const wire = t & 7;
    if (!fn(r, field, wire)) r.skipType(wire);
  }
}

function readNanosMs(r: protobuf.Reader): number {
  const lo = r.fixed32();
  const hi = r.fixed32();
  const nanos = (BigInt(hi) << 32n) | BigInt(lo);
  return Number(nanos / 1000n) / 1000;
}

function readAnyValue(buf: Uint8Array): AttributeValue {
  let v: AttributeValue = '';
  readFields(buf, (r, f, wire) => {
    if (f === 1 && wire === LEN) v = r.string();
    else if (f === 2 && wire === VARINT) v = r.bool();
    else if (f === 3 && wire === VARINT) v = Number(r.int64());
    else if (f === 4 && wire === I64) v = r.double();
    else if (f === 5 && wire === LEN) {
      const list: string[] = [];
      readFields(r.bytes(), (a, af, aw) => {
        if (af !== 1 || aw !== LEN) return false;
        list.push(String(readAnyValue(a.bytes())));
        return true;
      });
      v = list;
    } else if (f === 7 && wire === LEN) v = Buffer.from(r.bytes()).toString('hex');
    else return false;
    return true;
  });
  return v;
}

function readKeyValue(buf: Uint8Array): [string, AttributeValue] {
  let key = '';
  let value: AttributeValue = '';
  readFields(buf, (r, f, wire) => {
    if (f === 1 && wire === LEN) key = r.string();
    else if (f === 2 && wire === LEN) value = readAnyValue(r.bytes());
    else return false;
    return true;
  });
  return [key, value];
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function readSpan(buf: Uint8Array, resource: Record<string, AttributeValue>, scope: string): ReceivedSpan {
  const s: ReceivedSpan = { traceId: '', spanId: '', parentSpanId: '', traceState: null, name: '', kind: 0, startMs: 0, endMs: 0, attributes: [], status: { code: 0 }, flags: 0, resource, scope };
  readFields(buf, (r, f, wire) => {
    if (wire === LEN && f === 1) s.traceId = hex(r.bytes());
    else if (wire === LEN && f === 2) s.spanId = hex(r.bytes());
    else if (wire === LEN && f === 3) s.traceState = r.string() || null;
    else if (wire === LEN && f === 4) s.parentSpanId = hex(r.bytes());
    else if (wire === LEN && f === 5) s.name = r.string();
    else if (wire === VARINT && f === 6) s.kind = r.int32();
    else if (wire === I64 && f === 7) s.startMs = readNanosMs(r);
    else if (wire === I64 && f === 8) s.endMs = readNanosMs(r);
    else if (wire === LEN && f === 9) s.attributes.push(readKeyValue(r.bytes()));
    else if (wire === LEN && f === 15) {
      readFields(r.bytes(), (p, sf, sw) => {
        if (sf === 2 && sw === LEN) s.status.message = p.string();
        else if (sf === 3 && sw === VARINT) s.status.code = p.int32();
        else return false;
        return true;
      });
    } else if (wire === I32 && f === 16) s.flags = r.fixed32();
    else return false;
    return true;
  });
  return s;
}

/**
 * Decodes an ExportTraceServiceRequest. Throws (protobufjs's RangeError or Error) on bytes that are not one;
 * callers answer that as a bad request.
 */
export function decodeExportRequest(buf: Uint8Array): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  readFields(buf, (r, f, wire) => {
    if (f !== 1 || wire !== LEN) return false;
    const rsBuf = r.bytes();
    const resource: Record<string, AttributeValue> = {};
    const scopes: Uint8Array[] = [];
    readFields(rsBuf, (rs, rf, rw) => {
      if (rf === 1 && rw === LEN) {
        readFields(rs.bytes(), (res, af, aw) => {
          if (af !== 1 || aw !== LEN) return false;
          const [k, v] = readKeyValue(res.bytes());
          resource[k] = v;
          return true;
        });
      } else if (rf === 2 && rw === LEN) scopes.push(rs.bytes());
      else return false;
      return true;
    });
    for (const ss of scopes) {
      let scope = '';
      const spans: Uint8Array[] = [];
      readFields(ss, (sr, sf, sw) => {
        if (sf === 1 && sw === LEN) {
          readFields(sr.bytes(), (sc, cf, cw) => {
            if (cf === 1 && cw === LEN) scope = sc.string();
            else return false;
            return true;
          });
        } else if (sf === 2 && sw === LEN) spans.push(sr.bytes());
        else return false;
        return true;
      });
      for (const sp of spans) out.push(readSpan(sp, resource, scope));
    }
    return true;
  });
  return out;
}
