import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { JOB_PATH } from '../../runner/executors/spawn-step.js';
import { withGitSshEnv, type GitRemote } from './git-ssh-env.js';
import { GitError, runGit } from './run-git.js';

/** A repository the server reads files of: its remote, and its id naming its local cache. */
export interface GitRepository extends GitRemote {
  id: string;
}

export interface GitReadOptions {
  dataDir: string;
  timeoutSeconds: number;
}

const WORKFLOW_DIR = '.furrow';
const WORKFLOW_FILE = /\.ya?ml$/;
/** Fetches under way per cache: one at a time per repository in this process. */
const fetching = new Map<string, Promise<unknown>>();

/** The remote answers, but has no such commit (or does not let it be fetched). */
export class CommitNotFoundError extends Error {
  override name = 'CommitNotFoundError';
}

/** The bare repository under the data dir that caches the commits read of one repository. */
export function gitCacheDir(dataDir: string, repositoryId: string): string {
  return path.join(dataDir, 'git', repositoryId);
}

/** Git's environment for commands on the cache alone (they reach no remote). */
function cacheEnv(cache: string): Record<string, string> {
  return { PATH: JOB_PATH, HOME: cache, LC_ALL: 'C', GIT_CONFIG_NOSYSTEM: '1' };
}

/** Runs `fn` once every earlier call for `key` has settled. */
function serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const before = fetching.get(key) ?? Promise.resolve();
  const mine = before.then(fn, fn);
  const settled = mine.catch(() => undefined);
  fetching.set(key, settled);
  void settled.then(() => {
    if (fetching.get(key) === settled) fetching.delete(key);
  });
  return mine;
}

/**
 * Makes `commit` available in the repository's cache: a shallow fetch of that one commit, skipped
 * when it is there already. Returns the cache's path.
 */
async function fetchCommit(repo: GitRepository, commit: string, opts: GitReadOptions): Promise<string> {
  if (!/^[0-9a-f]{40}$/.test(commit)) throw new Error(`not a full commit sha: ${commit}`);
  const cache = gitCacheDir(opts.dataDir, repo.id);
  return serialized(cache, async () => {
    const base = { env: cacheEnv(cache), timeoutSeconds: opts.timeoutSeconds };
    if (!(await access(path.join(cache, 'HEAD')).then(() => true, () => false))) {
      await mkdir(path.dirname(cache), { recursive: true, mode: 0o700 });
      await runGit(['init', '--bare', '--quiet', cache], base);
    }
    const present = await runGit(['-C', cache, 'cat-file', '-e', `${commit}^{commit}`], base).then(() => true, () => false);
    if (!present) {
      // The URL rather than a configured remote: it may have changed since the last fetch.
      await withGitSshEnv(repo, async (git) => {
        const remote = { env: git.env, timeoutSeconds: opts.timeoutSeconds };
        try {
          await runGit(['-C', cache, 'fetch', '--quiet', '--depth', '1', '--no-tags', '--', repo.url, commit], remote);
        } catch (err) {
          // A remote that answers ls-remote is reachable: then it is the commit that is missing.
          if (!(err instanceof GitError) || !(await runGit(['ls-remote', '--heads', '--', repo.url], remote).then(() => true, () => false))) throw err;
          throw new CommitNotFoundError(`The repository has no commit ${commit} that it lets be fetched (it must exist and be reachable from a branch or tag).`);
        }
      });
    }
    return cache;
  });
}

function catFile(cache: string, object: string, opts: GitReadOptions): Promise<string> {
  return runGit(['-C', cache, 'cat-file', 'blob', object], { env: cacheEnv(cache), timeoutSeconds: opts.timeoutSeconds });
}

/** The paths of the workflow files (`.furrow/*.yml` and `.furrow/*.yaml`) at `commit` (a full sha), sorted. */
export async function listWorkflowFiles(repo: GitRepository, commit: string, opts: GitReadOptions): Promise<string[]> {
  const cache = await fetchCommit(repo, commit, opts);
  const listing = await runGit(['-C', cache, 'ls-tree', '-z', commit, '--', `${WORKFLOW_DIR}/`], { env: cacheEnv(cache), timeoutSeconds: opts.timeoutSeconds });
  const paths: string[] = [];
  for (const entry of listing.split('\0')) {
    // `<mode> <type> <oid>\t<path>`
    const m = /^\d+ blob [0-9a-f]+\t(.+)$/s.exec(entry);
    if (m && WORKFLOW_FILE.test(m[1]!)) paths.push(m[1]!);
  }
  return paths.sort();
}

/** One file's text at `commit` (a full sha); undefined when the commit has no such file. */
export async function readWorkflowFile(repo: GitRepository, commit: string, file: string, opts: GitReadOptions): Promise<string | undefined> {
  const cache = await fetchCommit(repo, commit, opts);
  try {
    return await catFile(cache, `${commit}:${file}`, opts);
  } catch (err) {
    if (err instanceof GitError) return undefined;
    throw err;
  }
}

/**
 * The paths that differ between two commits (full shas), from their trees: what a push or a
 * polled ref change touched. Throws CommitNotFoundError when the remote no longer has one of them
 * (a force-pushed-away commit).
 */
export async function changedPaths(repo: GitRepository, before: string, after: string, opts: GitReadOptions): Promise<string[]> {
  await fetchCommit(repo, before, opts);
  const cache = await fetchCommit(repo, after, opts);
  const out = await runGit(['-C', cache, 'diff-tree', '-r', '-z', '--name-only', '--no-commit-id', before, after], { env: cacheEnv(cache), timeoutSeconds: opts.timeoutSeconds });
  return out.split('\0').filter((p) => p !== '');
}
