import { withGitSshEnv, type GitRemote } from './git-ssh-env.js';
import { runGit } from './run-git.js';

const FULL_SHA = /^[0-9a-f]{40}$/;

/** The remote has no branch or tag by that name. */
export class RefNotFoundError extends Error {
  override name = 'RefNotFoundError';
}

/**
 * The commit a branch, tag (annotated tags are peeled) or full ref name points at, asked of the
 * remote with `git ls-remote`; a full 40-hex sha is taken as is. Branches win over tags of the
 * same name, as they do for `git checkout`.
 */
export async function resolveRef(remote: GitRemote, ref: string, timeoutSeconds: number): Promise<string> {
  if (FULL_SHA.test(ref)) return ref;
  const wanted = ref.startsWith('refs/') || ref === 'HEAD' ? [ref, `${ref}^{}`] : [`refs/heads/${ref}`, `refs/tags/${ref}^{}`, `refs/tags/${ref}`];
  const out = await withGitSshEnv(remote, (git) => runGit(['ls-remote', '--', remote.url, ref], { env: git.env, timeoutSeconds }));
  const found = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [sha, name] = line.split('\t');
    if (sha && name) found.set(name, sha);
  }
  for (const name of wanted) {
    const sha = found.get(name);
    if (sha) return sha;
  }
  const hint = /^[0-9a-f]{4,39}$/.test(ref) ? ' (give a commit as its full 40-character sha)' : '';
  throw new RefNotFoundError(`The repository has no branch or tag named "${ref}"${hint}.`);
}
