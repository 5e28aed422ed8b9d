// Credentials for the agent's gRPC channels to the control plane (xDS, the telemetry stream, span export): plaintext
// on loopback or a unix socket, else TLS verified against the mesh root with the node's token on every call.

import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';

export interface ControlPlaneTls {
  rootFile: string;
  /** A projected ServiceAccount token, re-read for every call. */
  tokenFile?: string;
  serverName?: string;
}

/** How to reach the control plane: plaintext, or TLS verified with the mesh root plus the node token per call. */
export function channelCredentials(tls: ControlPlaneTls | undefined): { creds: grpc.ChannelCredentials; options: Record<string, string> } {
  if (!tls) return { creds: grpc.credentials.createInsecure(), options: {} };
  let root: Buffer;
  try {
    root = fs.readFileSync(tls.rootFile);
  } catch (err) {
    throw new Error(`cannot read the mesh root ${tls.rootFile} to verify the control plane: ${(err as Error).message} (mount the ConfigMap the control plane publishes, or fix --xds-root-file)`);
  }
  let creds = grpc.credentials.createSsl(root);
  const tokenFile = tls.tokenFile;
  if (tokenFile !== undefined) {
    const perCall = grpc.credentials.createFromMetadataGenerator((_params, cb) => {
      fs.promises.readFile(tokenFile, 'utf8').then(
        (t) => {
          const md = new grpc.Metadata();
          md.set('authorization', `Bearer ${t.trim()}`);
          cb(null, md);
        },
        (err: Error) => cb(new Error(`cannot read the node token ${tokenFile}: ${err.message}`)),
      );
    });
    creds = grpc.credentials.combineChannelCredentials(creds, perCall);
  }
  return { creds, options: tls.serverName ? { 'grpc.ssl_target_name_override': tls.serverName } : {} };
}
