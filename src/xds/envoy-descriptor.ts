// The Envoy message types nodemesh uses, as a compact protobufjs JSON descriptor (protos/envoy-types.json),
// generated from the .proto files shipped in @grpc/grpc-js-xds by `npm run gen:envoy-types`.
//
// Parsing those .proto files at start-up costs ~150 ms and leaves ~5 MB on the heap (533 types, with their
// validation options and comments); the agent needs the 383 types reachable from the resources it decodes,
// without options. The test for this file checks that the stored descriptor is what the protos give today.

import fs from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';
import { protosDir } from '../util/protos-dir';
import {
  CLUSTER_TYPE,
  ENDPOINT_TYPE,
  HCM_TYPE,
  HTTP_FAULT_TYPE,
  HTTP_INSPECTOR_TYPE,
  HTTP_PROTOCOL_OPTIONS_TYPE,
  HTTP_RBAC_TYPE,
  LB_LEAST_REQUEST_TYPE,
  LB_MAGLEV_TYPE,
  LB_RANDOM_TYPE,
  LB_RING_HASH_TYPE,
  LB_ROUND_ROBIN_TYPE,
  LISTENER_TYPE,
  RBAC_TYPE,
  ROUTER_TYPE,
  ROUTE_TYPE,
  TCP_PROXY_TYPE,
  TYPED_STRUCT_TYPE,
} from './resource-types';

/** The files whose messages nodemesh encodes or decodes; their imports come along. */
const ENVOY_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/config/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/load_balancing_policies/random/v3/random.proto',
  'envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto',
  'envoy/extensions/load_balancing_policies/maglev/v3/maglev.proto',
  'xds/type/v3/typed_struct.proto',
];

/** Every message nodemesh encodes or decodes at the top level (ADS messages and the Any payloads in them). */
export const ENVOY_ROOT_TYPES = [
  'envoy.service.discovery.v3.DiscoveryRequest',
  'envoy.service.discovery.v3.DiscoveryResponse',
  'envoy.service.discovery.v3.DeltaDiscoveryRequest',
  'envoy.service.discovery.v3.DeltaDiscoveryResponse',
  LISTENER_TYPE,
  ROUTE_TYPE,
  CLUSTER_TYPE,
  ENDPOINT_TYPE,
  HCM_TYPE,
  ROUTER_TYPE,
  TCP_PROXY_TYPE,
  RBAC_TYPE,
  HTTP_RBAC_TYPE,
  HTTP_INSPECTOR_TYPE,
  HTTP_FAULT_TYPE,
  HTTP_PROTOCOL_OPTIONS_TYPE,
  LB_LEAST_REQUEST_TYPE,
  LB_ROUND_ROBIN_TYPE,
  LB_RANDOM_TYPE,
  LB_RING_HASH_TYPE,
  LB_MAGLEV_TYPE,
  TYPED_STRUCT_TYPE,
];

/** The file the descriptor is stored in: protos/envoy-types.json at the package root. */
export function envoyDescriptorPath(): string {
  return path.join(protosDir('envoy-types.json'), 'envoy-types.json');
}

/** Parses the Envoy .proto files from @grpc/grpc-js-xds (slow; for generating and checking the descriptor). */
export function parseEnvoyProtos(): protobuf.Root {
  const xds = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
  const dirs = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(xds, 'deps', d));
  // descriptor.proto (imported by validate.proto) is not among protobufjs' built-in common types.
  const pbDir = path.dirname(require.resolve('protobufjs/package.json'));
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string => {
    if (path.isAbsolute(target)) return target;
    if (target.startsWith('google/protobuf/')) {
      const p = path.join(pbDir, target);
      if (fs.existsSync(p)) return p;
    }
    for (const d of dirs) {
      const p = path.join(d, target);
      if (fs.existsSync(p)) return p;
    }
    return target;
  };
  root.loadSync(ENVOY_FILES, { keepCase: true });
  root.resolveAll();
  return root;
}

type FieldJson = { type: string; id: number; rule?: string; keyType?: string; options?: { packed?: boolean; proto3_optional?: boolean } };
type TypeJson = { fields: Record<string, FieldJson>; oneofs?: Record<string, { oneof: string[] }> };
type EnumJson = { values: Record<string, number> };
interface NamespaceJson {
  nested?: Record<string, NamespaceJson & Partial<TypeJson> & Partial<EnumJson>>;
}

/** `.a.b.C` -> `a.b.C`. */
const bare = (fullName: string): string => fullName.replace(/^\./, '');

function fieldJson(f: protobuf.Field): FieldJson {
  const out: FieldJson = { type: f.resolvedType ? f.resolvedType.fullName : f.type, id: f.id };
  if (f instanceof protobuf.MapField) out.keyType = f.keyType;
  else if (f.repeated) out.rule = 'repeated';
  const options: FieldJson['options'] = {};
  if (f.getOption('packed') !== undefined) options.packed = f.getOption('packed') as boolean;
  if (f.getOption('proto3_optional')) options.proto3_optional = true;
  if (Object.keys(options).length > 0) out.options = options;
  return out;
}

function typeJson(t: protobuf.Type | protobuf.Enum): TypeJson | EnumJson {
  if (t instanceof protobuf.Enum) return { values: { ...t.values } };
  const fields: Record<string, FieldJson> = {};
  for (const f of t.fieldsArray) fields[f.name] = fieldJson(f);
  const out: TypeJson = { fields };
  if (t.oneofsArray.length > 0) {
    out.oneofs = {};
    for (const o of t.oneofsArray) out.oneofs[o.name] = { oneof: [...o.oneof] };
  }
  return out;
}

/**
 * The types reachable from `rootTypes` through message and enum fields, as protobufjs JSON without options
 * (field options other than packing, comments, services, unused types). Type references are absolute.
 * Keys are sorted so the stored file diffs cleanly.
 */
export function pruneDescriptor(root: protobuf.Root, rootTypes: readonly string[]): NamespaceJson {
  const reachable = new Map<string, protobuf.Type | protobuf.Enum>();
  const visit = (t: protobuf.Type | protobuf.Enum): void => {
    if (reachable.has(t.fullName)) return;
    reachable.set(t.fullName, t);
    if (t instanceof protobuf.Type) {
      for (const f of t.fieldsArray) if (f.resolvedType) visit(f.resolvedType);
    }
  };
  for (const name of rootTypes) visit(root.lookupType(name));

  const out: NamespaceJson = {};
  for (const name of [...reachable.keys()].sort()) {
    let ns = out;
    for (const part of bare(name).split('.')) {
      ns.nested ??= {};
      ns = ns.nested[part] ??= {};
    }
    Object.assign(ns, typeJson(reachable.get(name)!));
  }
  return out;
}

/** What `npm run gen:envoy-types` writes to protos/envoy-types.json: one line per field or enum. */
export function generateEnvoyDescriptor(): string {
  const json = JSON.stringify(pruneDescriptor(parseEnvoyProtos(), ENVOY_ROOT_TYPES), null, 1);
  // Innermost objects (a field's type and id, an enum's values, a oneof's members) on one line each.
  const compact = json.replace(/\{\n\s*([^{}]*?)\n\s*\}/g, (_m, body: string) => `{ ${body.replace(/\n\s*/g, ' ')} }`);
  return `${compact}\n`;
}

/** The stored descriptor as a resolved protobufjs Root. */
export function loadEnvoyDescriptor(file = envoyDescriptorPath()): protobuf.Root {
  const root = protobuf.Root.fromJSON(JSON.parse(fs.readFileSync(file, 'utf8')) as protobuf.INamespace);
  root.resolveAll();
  return root;
}
