// Leaf certificates for the HAProxy contender, signed by the lab control plane's CA root: the same
// trust anchor, SPIFFE URI SANs and key type (RSA 2048) as the certificates the agents get.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const forge = require('node-forge');

/**
 * @param {string} caDir  /run/nodemesh/lab/<lab>/ca (root-cert.pem, root-key.pem)
 * @param {string} spiffeId
 * @returns {{certPem: string, keyPem: string, rootPem: string}}
 */
function issueLeaf(caDir, spiffeId) {
  const rootPem = fs.readFileSync(path.join(caDir, 'root-cert.pem'), 'utf8');
  const root = forge.pki.certificateFromPem(rootPem);
  const rootKey = forge.pki.privateKeyFromPem(fs.readFileSync(path.join(caDir, 'root-key.pem'), 'utf8'));
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const priv = forge.pki.privateKeyFromPem(keyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.setRsaPublicKey(priv.n, priv.e);
  const serial = crypto.randomBytes(16);
  serial[0] &= 0x7f;
  cert.serialNumber = serial.toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
  cert.setSubject([{ name: 'organizationName', value: 'cluster.local' }]);
  cert.setIssuer(root.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', critical: true, altNames: [{ type: 6, value: spiffeId }] },
    { name: 'authorityKeyIdentifier', keyIdentifier: root.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(rootKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem, rootPem };
}

module.exports = { issueLeaf };
