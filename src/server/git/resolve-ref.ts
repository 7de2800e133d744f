import { withGitSshEnv, type GitRemote } from './git-ssh-env.js';
import { runGit } from './run-git.js';

const FULL_SHA = /^[0-9a-f]{40}$/;

/** The remote has no branch or tag by that name. */
export class RefNotFoundError extends Error {
  override name = 'RefNotFoundError';
}

/** A ref as the remote names it, and the commit it points at. */
export interface ResolvedRef {
  /** The full name (`refs/heads/main`, `refs/tags/v1`), or the sha itself when one was given. */
  ref: string;
  commit: string;
}

/**
 * The commit a branch, tag (annotated tags are peeled) or full ref name points at, asked of the
 * remote with `git ls-remote`, with the full name it was found under; a full 40-hex sha is taken
 * as is. Branches win over tags of the same name, as they do for `git checkout`.
 */
export async function resolveRefName(remote: GitRemote, ref: string, timeoutSeconds: number): Promise<ResolvedRef> {
  if (FULL_SHA.test(ref)) return { ref, commit: ref };
  if (ref.startsWith('-')) throw new RefNotFoundError(`"${ref}" is not a branch or tag name.`);
  const names = ref.startsWith('refs/') || ref === 'HEAD' ? [ref] : [`refs/heads/${ref}`, `refs/tags/${ref}`];
  const out = await withGitSshEnv(remote, (git) => runGit(['ls-remote', '--', remote.url, ref, `${ref}^{}`], { env: git.env, timeoutSeconds }));
  const found = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [sha, name] = line.split('\t');
    if (sha && name) found.set(name, sha);
  }
  for (const name of names) {
    // An annotated tag's own object is not a commit: its peeled line (`^{}`, listed only when
    // asked for by pattern) names the commit.
    const commit = found.get(`${name}^{}`) ?? found.get(name);
    if (commit) return { ref: name, commit };
  }
  const hint = /^[0-9a-f]{4,39}$/.test(ref) ? ' (give a commit as its full 40-character sha)' : '';
  throw new RefNotFoundError(`The repository has no branch or tag named "${ref}"${hint}.`);
}
