import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { access, link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Reads a 32-byte key written as 64 hex digits or as base64; undefined when it is neither. */
export function parseSecretKey(text: string): Buffer | undefined {
  const t = text.trim();
  if (/^[0-9a-f]{64}$/i.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) {
    const key = Buffer.from(t, 'base64');
    if (key.length === 32) return key;
  }
  return undefined;
}

/**
 * Makes the key file: written whole under another name, then linked into place, so no process
 * reads a half-written key and `link` never replaces one another process made meanwhile.
 */
async function createKeyFile(file: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const fresh = `${file}.${randomBytes(6).toString('hex')}`;
  await writeFile(fresh, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(fresh, file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  } finally {
    await unlink(fresh);
  }
}

/**
 * Seals values (secrets, deploy keys) with AES-256-GCM under a key that never enters the
 * database. A sealed value is `version(1) | iv(12) | tag(16) | ciphertext`; the row's purpose is
 * bound in as associated data, so a sealed value copied into another row does not open there.
 */
export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  /**
   * The box for FURROW_SECRET_KEY when given, else for the key file in the data dir, which is
   * made (mode 0600) on first use.
   */
  static async load(opts: { secretKey: string | undefined; dataDir: string }): Promise<SecretBox> {
    if (opts.secretKey === undefined) {
      const file = path.join(opts.dataDir, 'secret.key');
      if (!(await access(file).then(() => true, () => false))) await createKeyFile(file);
    }
    return (await SecretBox.find(opts))!;
  }

  /** The box of the key configured or in the key file; undefined when neither exists. Writes nothing. */
  static async find(opts: { secretKey: string | undefined; dataDir: string }): Promise<SecretBox | undefined> {
    if (opts.secretKey !== undefined) {
      const key = parseSecretKey(opts.secretKey);
      if (!key) throw new Error('FURROW_SECRET_KEY must be 32 bytes written as 64 hex digits or as base64 (e.g. `openssl rand -base64 32`)');
      return new SecretBox(key);
    }
    const file = path.join(opts.dataDir, 'secret.key');
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
    if (text === undefined) return undefined;
    const key = parseSecretKey(text);
    if (!key) throw new Error(`${file} does not hold a 32-byte key (64 hex digits or base64)`);
    return new SecretBox(key);
  }

  /** Seals `value`; `purpose` (e.g. `secret:<id>`) must be given again to open it. */
  seal(value: string | Buffer, purpose: string): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(purpose));
    const body = Buffer.concat([cipher.update(value), cipher.final()]);
    return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), body]);
  }

  /** Opens a sealed value; throws when it was sealed under another key or purpose, or altered. */
  open(sealed: Buffer, purpose: string): Buffer {
    if (sealed[0] !== VERSION || sealed.length < 1 + IV_BYTES + TAG_BYTES) throw new Error('not a sealed value');
    const iv = sealed.subarray(1, 1 + IV_BYTES);
    const tag = sealed.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', this.key, iv);
    decipher.setAAD(Buffer.from(purpose));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(sealed.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]);
  }

  openText(sealed: Buffer, purpose: string): string {
    return this.open(sealed, purpose).toString('utf8');
  }
}
