import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { generateDeployKey } from './deploy-key.js';

const run = promisify(execFile);
const dir = await mkdtemp(path.join(tmpdir(), 'furrow-deploy-key-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('generateDeployKey', () => {
  it.each([
    ['ed25519', 'ssh-ed25519', 256],
    ['rsa', 'ssh-rsa', 4096],
  ] as const)('makes an %s key pair that ssh-keygen reads', async (type, prefix, bits) => {
    const key = await generateDeployKey(type, 'furrow deploy key');
    expect(key.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n[\s\S]+-----END OPENSSH PRIVATE KEY-----\n?$/);
    expect(key.publicKey).toMatch(new RegExp(`^${prefix} [A-Za-z0-9+/=]+ furrow deploy key$`));
    expect(key.publicKey).not.toContain('\n');
    const file = path.join(dir, type);
    await writeFile(file, key.privateKey, { mode: 0o600 });
    // The public key derived from the private key by OpenSSH is the one we hand out.
    const derived = await run('ssh-keygen', ['-y', '-f', file]);
    expect(derived.stdout.trim().split(' ').slice(0, 2)).toEqual(key.publicKey.split(' ').slice(0, 2));
    const listed = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', file]);
    expect(listed.stdout).toContain(`${bits} ${key.fingerprint} `);
  });

  it('makes a different key each time', async () => {
    const [a, b] = await Promise.all([generateDeployKey('ed25519', 'a'), generateDeployKey('ed25519', 'b')]);
    expect(a.fingerprint).not.toBe(b.fingerprint);
  });
});
