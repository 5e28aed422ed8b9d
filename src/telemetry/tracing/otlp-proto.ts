// OTLP traces on the wire (opentelemetry-proto, collector/trace/v1): ExportTraceServiceRequest out of our
// span records, and back (the control plane's receiver reads what agents, applications or collectors send).
//
// Written with protobufjs's Writer/Reader (already loaded for xDS) over the field numbers of the published
// schema, not its generated code: the subset a tracer writes is small, and this keeps the agent from loading
// a second protobuf runtime. Field numbers: trace.proto, common.proto, resource.proto of opentelemetry-proto
// v1 (they never change within v1).

import protobuf from 'protobufjs';
import { isIntAttribute, type AttributeValue, type SpanRecord, type SpanResource } from './span';

const LEN = 2;
const VARINT = 0;
const I64 = 1;
const I32 = 5;

const tag = (field: number, wire: number): number => (field << 3) | wire;

/** Unix ms (fractional) as fixed64 nanoseconds: two little-endian 32-bit halves (a double cannot hold 1e18 exactly). */
function writeNanos(w: protobuf.Writer, field: number, ms: number): void {
  const whole = Math.floor(ms);
  const nanos = BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6));
  w.uint32(tag(field, I64)).fixed32(Number(nanos & 0xffffffffn)).fixed32(Number(nanos >> 32n));
}

function writeAnyValue(w: protobuf.Writer, key: string, v: AttributeValue): void {
  if (typeof v === 'string') w.uint32(tag(1, LEN)).string(v);
  else if (typeof v === 'boolean') w.uint32(tag(2, VARINT)).bool(v);
  else if (typeof v === 'number') {
    if (isIntAttribute(key) && Number.isInteger(v)) w.uint32(tag(3, VARINT)).int64(v);
    else w.uint32(tag(4, I64)).double(v);
  } else {
    // ArrayValue { repeated AnyValue values = 1 }
    w.uint32(tag(5, LEN)).fork();
    for (const s of v) w.uint32(tag(1, LEN)).fork().uint32(tag(1, LEN)).string(s).ldelim();
    w.ldelim();
  }
}

function writeAttributes(w: protobuf.Writer, field: number, attrs: [string, AttributeValue][]): void {
  for (const [k, v] of attrs) {
    w.uint32(tag(field, LEN)).fork();
    w.uint32(tag(1, LEN)).string(k);
    w.uint32(tag(2, LEN)).fork();
    writeAnyValue(w, k, v);
    w.ldelim();
    w.ldelim();
  }
}

function writeSpan(w: protobuf.Writer, s: SpanRecord): void {
  w.uint32(tag(1, LEN)).bytes(Buffer.from(s.traceId, 'hex'));
  w.uint32(tag(2, LEN)).bytes(Buffer.from(s.spanId, 'hex'));
  if (s.traceState) w.uint32(tag(3, LEN)).string(s.traceState);
  if (s.parentSpanId) w.uint32(tag(4, LEN)).bytes(Buffer.from(s.parentSpanId, 'hex'));
  w.uint32(tag(5, LEN)).string(s.name);
  w.uint32(tag(6, VARINT)).int32(s.kind);
  writeNanos(w, 7, s.startMs);
  writeNanos(w, 8, s.endMs);
  writeAttributes(w, 9, s.attributes);
  if (s.status.code !== 0 || s.status.message) {
    w.uint32(tag(15, LEN)).fork();
    if (s.status.message) w.uint32(tag(2, LEN)).string(s.status.message);
    w.uint32(tag(3, VARINT)).int32(s.status.code);
    w.ldelim();
  }
  w.uint32(tag(16, I32)).fixed32(s.flags);
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
  const w = protobuf.Writer.create();
  for (const g of byResource.values()) {
    w.uint32(tag(1, LEN)).fork(); // resource_spans
    w.uint32(tag(1, LEN)).fork(); // resource
    writeAttributes(w, 1, g.resource.attributes);
    w.ldelim();
    w.uint32(tag(2, LEN)).fork(); // scope_spans
    w.uint32(tag(1, LEN)).fork().uint32(tag(1, LEN)).string(SCOPE.name).uint32(tag(2, LEN)).string(SCOPE.version).ldelim();
    for (const s of g.spans) {
      w.uint32(tag(2, LEN)).fork();
      writeSpan(w, s);
      w.ldelim();
    }
    w.ldelim();
    w.ldelim();
  }
  return w.finish();
}

/** ExportTraceServiceResponse: empty (full success), or partial_success with the spans refused and why. */
export function encodeExportResponse(rejected = 0, message = ''): Uint8Array {
  const w = protobuf.Writer.create();
  if (rejected > 0 || message) {
    w.uint32(tag(1, LEN)).fork();
    if (rejected > 0) w.uint32(tag(1, VARINT)).int64(rejected);
    if (message) w.uint32(tag(2, LEN)).string(message);
    w.ldelim();
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
