import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { JOB_PATH } from '../../runner/executors/spawn-step.js';
import { GIT_ALLOW_PROTOCOL, gitSshCommand } from '../../runner/git-ssh-command.js';

/** A git remote and what it takes to reach it. */
export interface GitRemote {
  url: string;
  /** OpenSSH private key (the deploy key); null when none is needed or none exists yet. */
  privateKey: string | null;
  /** Pinned known_hosts lines; null while none are pinned (the first SSH contact learns them). */
  knownHosts: string | null;
}

export interface GitSshEnv {
  /** The whole environment for git: nothing of the server's own is passed on. */
  env: Record<string, string>;
  /** known_hosts lines ssh learned on first contact; null when keys were pinned or none were learned. */
  learnedKnownHosts(): Promise<string | null>;
  /** Removes the key and everything else written for these commands. */
  cleanup(): Promise<void>;
}

/**
 * The environment for running git with a deploy key: the key and known_hosts go into a fresh
 * temp dir (0700; files 0600) that is also HOME, so no user or system git or ssh config applies.
 * Host keys are checked strictly against the pinned ones; only when none are pinned yet is a new
 * host key accepted, and it can then be read back and pinned.
 */
export async function gitSshEnv(remote: Pick<GitRemote, 'privateKey' | 'knownHosts'>): Promise<GitSshEnv> {
  const dir = await mkdtemp(path.join(tmpdir(), 'furrow-git-'));
  try {
    const knownHostsFile = path.join(dir, 'known_hosts');
    const pinned = remote.knownHosts?.trim() ? `${remote.knownHosts.trim()}\n` : '';
    await writeFile(knownHostsFile, pinned, { mode: 0o600 });
    let keyFile: string | undefined;
    if (remote.privateKey) {
      keyFile = path.join(dir, 'deploy_key');
      // ssh refuses a key without its final newline.
      await writeFile(keyFile, remote.privateKey.endsWith('\n') ? remote.privateKey : `${remote.privateKey}\n`, { mode: 0o600 });
    }
    return {
      env: {
        PATH: JOB_PATH,
        HOME: dir,
        LANG: 'C',
        LC_ALL: 'C',
        GIT_SSH_COMMAND: gitSshCommand({ keyFile, knownHostsFile, acceptNew: !pinned }),
        GIT_TERMINAL_PROMPT: '0',
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_ALLOW_PROTOCOL,
      },
      async learnedKnownHosts() {
        if (pinned) return null;
        return (await readFile(knownHostsFile, 'utf8')).trim() || null;
      },
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Runs `fn` with a git environment for `remote`, then removes the key files. */
export async function withGitSshEnv<T>(remote: Pick<GitRemote, 'privateKey' | 'knownHosts'>, fn: (git: GitSshEnv) => Promise<T>): Promise<T> {
  const git = await gitSshEnv(remote);
  try {
    return await fn(git);
  } finally {
    await git.cleanup();
  }
}
