// RSA keys for the CA's own certificates (root, serving), made by Node's crypto and handed to node-forge.

import forge from 'node-forge';
import { DEFAULT_KEY_BITS, generateKeyPair, privateKeyPem, type KeyPair } from '../../identity/pki';

/** The same key pair as node-forge objects. */
export function toForgeKeyPair(keys: KeyPair): forge.pki.rsa.KeyPair {
  return {
    privateKey: forge.pki.privateKeyFromPem(privateKeyPem(keys)) as forge.pki.rsa.PrivateKey,
    publicKey: forge.pki.publicKeyFromPem(keys.publicKey.export({ type: 'spki', format: 'pem' }) as string) as forge.pki.rsa.PublicKey,
  };
}

/** A key pair as node-forge signs with; generated off the event loop like the agent's. */
export async function generateForgeKeyPair(bits = DEFAULT_KEY_BITS): Promise<forge.pki.rsa.KeyPair> {
  return toForgeKeyPair(await generateKeyPair(bits));
}
