// The CA's key material in a Kubernetes Secret (Istio's `cacerts` layout), so the control plane needs no volume and
// any number of replicas share one CA: the first to start generates a root and creates the Secret, the others
// (losing the create race with 409) read it. An operator may create the Secret beforehand with an intermediate.
//
// Keys: ca-cert.pem (the signing certificate), ca-key.pem (its key), cert-chain.pem (the signing certificate's
// issuers up to the root; may start with ca-cert.pem itself), root-cert.pem (the root).

import { splitPemCertificates } from '../../identity/pki';
import { generateRoot } from './authority';
import { CA_ERR, CaError } from './errors';

export interface SecretApi {
  /** The Secret's data (base64 values), or null when it does not exist. */
  read(namespace: string, name: string): Promise<Record<string, string> | null>;
  /** Creates it; resolves false when it already exists (409). */
  create(namespace: string, name: string, data: Record<string, string>, labels: Record<string, string>): Promise<boolean>;
}

export interface CaMaterial {
  certPem: string;
  keyPem: string;
  issuersPem: string[];
  origin: string;
  created: boolean;
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');

function fromData(data: Record<string, string>, where: string): Omit<CaMaterial, 'created'> {
  const get = (k: string): string | undefined => (data[k] === undefined ? undefined : unb64(data[k]!));
  const certPem = get('ca-cert.pem');
  const keyPem = get('ca-key.pem');
  if (!certPem || !keyPem) {
    throw new CaError(CA_ERR.SECRET, `the CA Secret ${where} lacks ${certPem ? 'ca-key.pem' : 'ca-cert.pem'}`, {
      hint: 'it needs ca-cert.pem, ca-key.pem and, for an intermediate, cert-chain.pem and root-cert.pem; delete it to have a root generated',
    });
  }
  const chain = splitPemCertificates(get('cert-chain.pem') ?? '');
  const root = get('root-cert.pem');
  // cert-chain.pem may or may not end with the root; the signer's chain must.
  if (root && !chain.some((c) => c.trim() === root.trim())) chain.push(...splitPemCertificates(root));
  return { certPem, keyPem, issuersPem: chain, origin: `secret ${where}` };
}

/** Reads the CA Secret, or generates a root and creates it; a lost create race reads the winner's. */
export async function loadOrCreateCaSecret(api: SecretApi, namespace: string, name: string, trustDomain: string): Promise<CaMaterial> {
  const where = `${namespace}/${name}`;
  const attempt = async (): Promise<Record<string, string> | null> => {
    try {
      return await api.read(namespace, name);
    } catch (err) {
      throw new CaError(CA_ERR.SECRET, `cannot read the CA Secret ${where}: ${(err as Error).message}`, {
        hint: `the control plane's ServiceAccount needs get on secrets/${name} in ${namespace} (see the Role in nodemesh install)`,
        cause: err,
      });
    }
  };
  const existing = await attempt();
  if (existing) return { ...fromData(existing, where), created: false };
  const { certPem, keyPem } = await generateRoot(trustDomain, Date.now());
  const data = { 'ca-cert.pem': b64(certPem), 'ca-key.pem': b64(keyPem), 'root-cert.pem': b64(certPem), 'cert-chain.pem': b64(certPem) };
  let created: boolean;
  try {
    created = await api.create(namespace, name, data, { 'app.kubernetes.io/managed-by': 'nodemesh-controlplane' });
  } catch (err) {
    throw new CaError(CA_ERR.SECRET, `cannot create the CA Secret ${where}: ${(err as Error).message}`, {
      hint: `the control plane's ServiceAccount needs create on secrets in ${namespace}`,
      cause: err,
    });
  }
  if (created) return { certPem, keyPem, issuersPem: [], origin: `secret ${where} (generated)`, created: true };
  const winner = await attempt();
  if (!winner) throw new CaError(CA_ERR.SECRET, `the CA Secret ${where} was created by another replica and then vanished`, { hint: 'restart the control plane' });
  return { ...fromData(winner, where), created: false };
}

/** SecretApi over the API server. */
export async function apiServerSecrets(kubeconfig?: string): Promise<SecretApi> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const code = (err: unknown): number | undefined => (err as { code?: number }).code;
  return {
    async read(namespace, name) {
      try {
        const s = await core.readNamespacedSecret({ namespace, name });
        return s.data ?? {};
      } catch (err) {
        if (code(err) === 404) return null;
        throw err;
      }
    },
    async create(namespace, name, data, labels) {
      try {
        await core.createNamespacedSecret({ namespace, body: { metadata: { name, namespace, labels }, type: 'Opaque', data } });
        return true;
      } catch (err) {
        if (code(err) === 409) return false;
        throw err;
      }
    },
  };
}
