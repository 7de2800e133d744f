import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SecretBox, parseSecretKey } from './secret-box.js';

const key = randomBytes(32);
const box = () => SecretBox.load({ secretKey: key.toString('hex'), dataDir: '/nonexistent' });
const dirs: string[] = [];
const tempDir = async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'furrow-box-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

describe('parseSecretKey', () => {
  it('reads 32 bytes as hex, base64 or base64url, around whitespace', () => {
    expect(parseSecretKey(key.toString('hex'))).toEqual(key);
    expect(parseSecretKey(key.toString('hex').toUpperCase())).toEqual(key);
    expect(parseSecretKey(`${key.toString('base64')}\n`)).toEqual(key);
    expect(parseSecretKey(key.toString('base64url'))).toEqual(key);
  });

  it('refuses anything else', () => {
    for (const text of ['', 'secret', randomBytes(16).toString('hex'), randomBytes(31).toString('base64'), randomBytes(33).toString('base64'), `${key.toString('hex')}0`]) {
      expect(parseSecretKey(text)).toBeUndefined();
    }
  });
});

describe('SecretBox', () => {
  it('opens what it sealed, for the same purpose', async () => {
    const b = await box();
    const sealed = b.seal('hunter2 and more', 'secret:a');
    expect(sealed.includes(Buffer.from('hunter2'))).toBe(false);
    expect(b.openText(sealed, 'secret:a')).toBe('hunter2 and more');
    expect(b.open(b.seal(Buffer.from([0, 1, 2, 255]), 'p'), 'p')).toEqual(Buffer.from([0, 1, 2, 255]));
    // A fresh IV each time: equal values do not give equal ciphertexts.
    expect(b.seal('same', 'p').equals(b.seal('same', 'p'))).toBe(false);
  });

  it('refuses another purpose, a tampered value and another key', async () => {
    const b = await box();
    const sealed = b.seal('hunter2 and more', 'secret:a');
    expect(() => b.open(sealed, 'secret:b')).toThrow();
    for (const at of [0, 5, 20, sealed.length - 1]) {
      const tampered = Buffer.from(sealed);
      tampered[at] = tampered[at]! ^ 1;
      expect(() => b.open(tampered, 'secret:a')).toThrow();
    }
    expect(() => b.open(sealed.subarray(0, 20), 'secret:a')).toThrow();
    const other = await SecretBox.load({ secretKey: randomBytes(32).toString('base64'), dataDir: '/nonexistent' });
    expect(() => other.open(sealed, 'secret:a')).toThrow();
  });

  it('makes a key file with mode 0600 once, then keeps using it', async () => {
    const dir = await tempDir();
    const first = await SecretBox.load({ secretKey: undefined, dataDir: dir });
    const file = path.join(dir, 'secret.key');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const text = await readFile(file, 'utf8');
    const second = await SecretBox.load({ secretKey: undefined, dataDir: dir });
    expect(await readFile(file, 'utf8')).toBe(text);
    expect(second.openText(first.seal('kept', 'p'), 'p')).toBe('kept');
  });

  it('fails clearly on a malformed key', async () => {
    await expect(SecretBox.load({ secretKey: 'not-a-key', dataDir: '/nonexistent' })).rejects.toThrow(/FURROW_SECRET_KEY must be 32 bytes/);
    const dir = await tempDir();
    await writeFile(path.join(dir, 'secret.key'), 'garbage\n');
    await expect(SecretBox.load({ secretKey: undefined, dataDir: dir })).rejects.toThrow(/secret\.key does not hold a 32-byte key/);
  });
});
