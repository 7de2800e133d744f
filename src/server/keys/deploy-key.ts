import { generateKeyPair } from 'node:crypto';
import sshpk from 'sshpk';

export type DeployKeyType = 'ed25519' | 'rsa';

export interface DeployKey {
  /** One OpenSSH line (`ssh-ed25519 AAAA… comment`), what a forge's deploy key form takes. */
  publicKey: string;
  /** OpenSSH PEM (`-----BEGIN OPENSSH PRIVATE KEY-----`), unencrypted: it is sealed at rest instead. */
  privateKey: string;
  /** `SHA256:…`, as `ssh-keygen -l` and forges show it. */
  fingerprint: string;
}

const ENCODING = { privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } } as const;

/** A new private key as PKCS#8 PEM, made on the libuv thread pool. */
function generatePkcs8(type: DeployKeyType): Promise<string> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, _publicKey: string, privateKey: string) => (err ? reject(err) : resolve(privateKey));
    if (type === 'rsa') generateKeyPair('rsa', { modulusLength: 4096, ...ENCODING }, done);
    else generateKeyPair('ed25519', ENCODING, done);
  });
}

/**
 * Makes a fresh SSH key pair. Generation runs on the libuv thread pool (a 4096-bit RSA key takes
 * about a second), so the event loop keeps serving meanwhile.
 */
export async function generateDeployKey(type: DeployKeyType, comment: string): Promise<DeployKey> {
  const key = sshpk.parsePrivateKey(await generatePkcs8(type), 'pkcs8');
  key.comment = comment;
  return {
    publicKey: key.toPublic().toString('ssh'),
    privateKey: key.toString('ssh-private'),
    fingerprint: key.fingerprint('sha256').toString(),
  };
}
