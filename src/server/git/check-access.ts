import { withGitSshEnv, type GitRemote } from './git-ssh-env.js';
import { GitError, runGit } from './run-git.js';

export interface AccessCheck {
  ok: boolean;
  /** What git said when it could not read the repository (e.g. `Permission denied (publickey)`). */
  error: string | null;
  /** The known_hosts to keep: the pinned lines, or those learned on this first contact. */
  knownHosts: string | null;
}

/**
 * Whether the remote can be read with its deploy key: `git ls-remote --symref URL HEAD`, which
 * transfers no objects. A failure of git is the answer (`ok: false`), not an exception.
 */
export async function checkAccess(remote: GitRemote, timeoutSeconds: number): Promise<AccessCheck> {
  return withGitSshEnv(remote, async (git) => {
    try {
      await runGit(['ls-remote', '--symref', '--', remote.url, 'HEAD'], { env: git.env, timeoutSeconds });
    } catch (err) {
      if (!(err instanceof GitError)) throw err;
      return { ok: false, error: err.message, knownHosts: remote.knownHosts };
    }
    return { ok: true, error: null, knownHosts: (await git.learnedKnownHosts()) ?? remote.knownHosts };
  });
}
