// A CA and server certificates made in memory at demo time with WebCrypto (no openssl needed).
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);
const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

async function pem(key) {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der
    .toString('base64')
    .match(/.{1,64}/g)
    .join('\n')}\n-----END PRIVATE KEY-----\n`;
}

/** Creates a CA; `issue(names)` gives a server certificate for those DNS names. */
export async function createDemoPki() {
  const now = new Date(Date.now() - 60_000);
  const until = new Date(Date.now() + 86_400_000);
  const caKeys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=egress-guard demo CA',
    notBefore: now,
    notAfter: until,
    signingAlgorithm: alg,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  let serial = 1;
  return {
    caPem: ca.toString('pem'),
    async issue(names) {
      const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: (++serial).toString(16).padStart(2, '0'),
        subject: `CN=${names[0]}`,
        issuer: ca.subject,
        notBefore: now,
        notAfter: until,
        signingAlgorithm: alg,
        publicKey: keys.publicKey,
        signingKey: caKeys.privateKey,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: 'dns', value }))),
        ],
      });
      return { cert: cert.toString('pem'), key: await pem(keys.privateKey) };
    },
  };
}
