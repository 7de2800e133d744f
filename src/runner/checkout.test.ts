import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckoutSpec } from '../protocol/messages.js';
import { checkoutArgv, runCheckout } from './checkout.js';
import { lookupUser, runsAsRoot, type JobUser } from './job-user.js';

const run = promisify(execFile);
const env = { PATH: '/usr/bin:/bin', HOME: tmpdir(), GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com' };
// The test reads workspaces the job user owns.
const git = async (args: string[], cwd?: string) => (await run('git', ['-c', 'safe.directory=*', ...args], { cwd, env })).stdout.trim();

let dir: string;
let bare: string;
const commits: string[] = [];
/** As root, git runs as an unprivileged user, as it does for jobs. */
let user: JobUser | undefined;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'furrow-checkout-'));
  await chmod(dir, 0o755);
  user = runsAsRoot() ? await lookupUser('nobody') : undefined;
  bare = path.join(dir, 'repo.git');
  const work = path.join(dir, 'work');
  await git(['init', '-q', '--bare', '--initial-branch=main', bare]);
  await git(['init', '-q', '--initial-branch=main', work]);
  for (const n of [1, 2, 3]) {
    await writeFile(path.join(work, 'file.txt'), `version ${n}\n`);
    await git(['add', '.'], work);
    await git(['commit', '-q', '-m', `commit ${n}`], work);
    commits.push(await git(['rev-parse', 'HEAD'], work));
  }
  await git(['push', '-q', bare, 'HEAD:refs/heads/main'], work);
  // git serves a local repository only to its owner.
  if (user) await run('chown', ['-R', `${user.uid}:${user.gid}`, bare]);
});

afterAll(() => rm(dir, { recursive: true, force: true }));

const spec = (extra: Partial<CheckoutSpec> = {}): CheckoutSpec => ({
  repositoryId: 'r',
  stepId: 'checkout',
  url: bare,
  commit: commits[1]!,
  ref: 'refs/heads/main',
  depth: 1,
  privateKey: null,
  knownHosts: null,
  ...extra,
});

/** A fresh workspace and scratch dir, the job user's own (as the runner makes them). */
async function dirs(name: string) {
  const workspace = path.join(dir, `${name}-ws`);
  const scratch = path.join(dir, `${name}-scratch`);
  for (const d of [workspace, scratch]) {
    await mkdir(d, { mode: 0o700 });
    if (user) await chown(d, user.uid, user.gid);
  }
  return { workspace, scratch };
}

async function checkout(s: CheckoutSpec, name: string, signal = new AbortController().signal) {
  const { workspace, scratch } = await dirs(name);
  const chunks: Buffer[] = [];
  const result = await runCheckout(s, { workspace, scratch, user, output: (d) => chunks.push(d), signal });
  return { ...result, workspace, scratch, log: Buffer.concat(chunks).toString() };
}

describe('runCheckout', () => {
  it('lists the git commands, without --depth for the whole history', () => {
    expect(checkoutArgv(spec(), '/ws')).toEqual([
      ['git', 'init', '-q', '/ws'],
      ['git', '-C', '/ws', 'remote', 'add', 'origin', bare],
      ['git', '-C', '/ws', 'fetch', '--depth', '1', '--no-tags', 'origin', commits[1]],
      ['git', '-C', '/ws', 'checkout', '-q', '--detach', 'FETCH_HEAD'],
    ]);
    expect(checkoutArgv(spec({ depth: 0 }), '/ws')[2]).toEqual(['git', '-C', '/ws', 'fetch', '--no-tags', 'origin', commits[1]]);
  });

  it('checks out one commit shallowly, as the job user, and logs each command', async () => {
    const r = await checkout(spec(), 'shallow');
    expect(r.exitCode, r.log).toBe(0);
    expect(await readFile(path.join(r.workspace, 'file.txt'), 'utf8')).toBe('version 2\n');
    expect(await git(['-C', r.workspace, 'rev-parse', 'HEAD'])).toBe(commits[1]);
    expect(await git(['-C', r.workspace, 'rev-list', '--count', 'HEAD'])).toBe('1');
    expect(r.log).toContain(`$ git -C ${r.workspace} fetch --depth 1 --no-tags origin ${commits[1]}\n`);
    expect(r.log.indexOf('$ git init')).toBeLessThan(r.log.indexOf('$ git -C'));
    if (user) {
      const { stdout } = await run('stat', ['-c', '%u', path.join(r.workspace, 'file.txt')]);
      expect(Number(stdout)).toBe(user.uid);
    }
  });

  it('fetches the whole history with depth 0', async () => {
    const r = await checkout(spec({ depth: 0, commit: commits[2]! }), 'full');
    expect(r.exitCode, r.log).toBe(0);
    expect(await git(['-C', r.workspace, 'rev-list', '--count', 'HEAD'])).toBe('3');
  });

  it('writes the key to the scratch dir for the checkout only', async () => {
    const key = '-----BEGIN OPENSSH PRIVATE KEY-----\nnot used for a local path\n-----END OPENSSH PRIVATE KEY-----\n';
    const r = await checkout(spec({ privateKey: key, knownHosts: '[example.com]:22 ssh-ed25519 AAAA' }), 'key');
    expect(r.exitCode, r.log).toBe(0);
    expect(await readdir(r.scratch)).toEqual([]);
    expect(r.log).not.toContain('PRIVATE KEY');
  });

  it('fails with git’s message when the commit does not exist', async () => {
    const r = await checkout(spec({ commit: 'f'.repeat(40) }), 'missing');
    expect(r.exitCode).not.toBe(0);
    expect(r.log).toMatch(/fatal: .*f{40}|not our ref|couldn't find remote ref/i);
    expect(r.log).not.toContain('$ git -C ' + r.workspace + ' checkout');
  });

  it('refuses a URL or commit git would read as an option', async () => {
    for (const [over, name] of [[{ url: '--upload-pack=touch /tmp/furrow-pwned' }, 'option-url'], [{ commit: '--upload-pack=touch' }, 'option-commit']] as const) {
      const r = await checkout(spec(over), name);
      expect(r.exitCode).toBe(1);
      expect(r.log).toContain('refusing to check out');
    }
  });

  it('stops when aborted', async () => {
    const controller = new AbortController();
    controller.abort('canceled');
    const r = await checkout(spec(), 'aborted', controller.signal);
    expect(r.exitCode).toBeNull();
    expect(await readdir(r.scratch)).toEqual([]);
  });
});
