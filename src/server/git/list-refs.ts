import { withGitSshEnv, type GitRemote } from './git-ssh-env.js';
import { runGit } from './run-git.js';

/**
 * The branches and tags of a remote with the commit each points at (`git ls-remote --heads
 * --tags`; an annotated tag by the commit it peels to), transferring no objects.
 */
export async function listRemoteRefs(remote: GitRemote, timeoutSeconds: number): Promise<Map<string, string>> {
  const out = await withGitSshEnv(remote, (git) => runGit(['ls-remote', '--heads', '--tags', '--', remote.url], { env: git.env, timeoutSeconds }));
  const refs = new Map<string, string>();
  const peeled = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [sha, name] = line.split('\t');
    if (!sha || !name) continue;
    if (name.endsWith('^{}')) peeled.set(name.slice(0, -3), sha);
    else refs.set(name, sha);
  }
  for (const [name, sha] of peeled) refs.set(name, sha);
  return refs;
}
