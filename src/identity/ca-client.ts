// The agent's client of the control plane's CertificateService: one CSR in, one chain out, as the node.

import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { certificateService, type CreateCertificateResponse } from './ca-proto';
import { ID_ERR, IdentityError } from './errors';

/** What the SecretManager needs from a CA; tests substitute an in-process one. */
export interface CertificateIssuer {
  /** The chain for `csrPem`, leaf first, root last. Rejects with an IdentityError. */
  createCertificate(csrPem: string, validitySeconds: number): Promise<string[]>;
  close(): void;
}

export interface CaClientOptions {
  /** `unix:///path` or `host:port`: usually the same address as xDS. */
  address: string;
  /** File holding the node's token, read at every request (it may be rotated underneath us). */
  tokenFile?: string;
  /** Root (PEM file) to verify the CA's TLS listener with; plaintext when absent. */
  tlsRootFile?: string;
  /** Name expected in the CA's serving certificate. Default nodemesh-ca. */
  tlsServerName?: string;
  /** Deadline per request. Default 10 s. */
  timeoutMs?: number;
}

export class CaClient implements CertificateIssuer {
  private readonly client: grpc.Client & {
    CreateCertificate: (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<CreateCertificateResponse>) => void;
  };

  constructor(private readonly opts: CaClientOptions) {
    let creds = grpc.credentials.createInsecure();
    const options: grpc.ChannelOptions = {};
    if (opts.tlsRootFile !== undefined) {
      let root: Buffer;
      try {
        root = fs.readFileSync(opts.tlsRootFile);
      } catch (err) {
        throw new IdentityError(ID_ERR.CA_REQUEST, `cannot read the CA root ${opts.tlsRootFile}: ${(err as Error).message}`, { cause: err });
      }
      creds = grpc.credentials.createSsl(root);
      options['grpc.ssl_target_name_override'] = opts.tlsServerName ?? 'nodemesh-ca';
      options['grpc.default_authority'] = opts.tlsServerName ?? 'nodemesh-ca';
    }
    const Ctor = certificateService();
    this.client = new Ctor(opts.address, creds, options) as unknown as CaClient['client'];
  }

  private async metadata(): Promise<grpc.Metadata> {
    const md = new grpc.Metadata();
    if (this.opts.tokenFile === undefined) return md;
    let token: string;
    try {
      token = (await fs.promises.readFile(this.opts.tokenFile, 'utf8')).trim();
    } catch (err) {
      throw new IdentityError(ID_ERR.TOKEN_FILE, `cannot read the node token ${this.opts.tokenFile}: ${(err as Error).message}`, {
        hint: 'the agent needs its node credential (--ca-token-file) to ask for certificates',
        cause: err,
      });
    }
    if (!token) throw new IdentityError(ID_ERR.TOKEN_FILE, `the node token file ${this.opts.tokenFile} is empty`);
    md.set('authorization', `Bearer ${token}`);
    return md;
  }

  async createCertificate(csrPem: string, validitySeconds: number): Promise<string[]> {
    const md = await this.metadata();
    const res = await new Promise<CreateCertificateResponse>((resolve, reject) => {
      this.client.CreateCertificate(
        { csr: csrPem, validity_duration: Math.round(validitySeconds) },
        md,
        { deadline: Date.now() + (this.opts.timeoutMs ?? 10_000) },
        (err, r) => (err ? reject(toIdentityError(err, this.opts.address)) : resolve(r!)),
      );
    });
    return res.cert_chain ?? [];
  }

  close(): void {
    this.client.close();
  }
}

/** A CA refusal keeps the CA's own message (it says what to check); transport problems say where we dialled. */
function toIdentityError(err: grpc.ServiceError, address: string): IdentityError {
  switch (err.code) {
    case grpc.status.UNAUTHENTICATED:
      return new IdentityError(ID_ERR.CA_UNAUTHENTICATED, `the CA did not accept this node's credential: ${err.details}`, { cause: err });
    case grpc.status.PERMISSION_DENIED:
    case grpc.status.INVALID_ARGUMENT:
      return new IdentityError(ID_ERR.CA_DENIED, `the CA refused: ${err.details}`, { cause: err });
    case grpc.status.UNIMPLEMENTED:
      return new IdentityError(ID_ERR.CA_REQUEST, `the control plane at ${address} does not run the CA`, {
        hint: 'start it with --ca-dir or --ca-cert/--ca-key',
        cause: err,
      });
    default:
      return new IdentityError(ID_ERR.CA_REQUEST, `cannot get a certificate from the CA at ${address}: ${grpc.status[err.code] ?? err.code}: ${err.details}`, {
        cause: err,
      });
  }
}
