import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** git without the host's or the user's config (no signing, hooks or templates of theirs). */
const GIT_ENV = {
  PATH: '/usr/local/bin:/usr/bin:/bin',
  HOME: tmpdir(),
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Furrow Test',
  GIT_AUTHOR_EMAIL: 'test@example.com',
  GIT_COMMITTER_NAME: 'Furrow Test',
  GIT_COMMITTER_EMAIL: 'test@example.com',
  LC_ALL: 'C',
};

export async function git(args: string[], cwd?: string): Promise<string> {
  const { stdout } = await run('git', args, { cwd, env: GIT_ENV });
  return stdout.trim();
}

export interface BareRepo {
  /** The bare repository's directory. */
  path: string;
  /** `file://` URL of it. */
  url: string;
  /** The sha of the first commit (on `branch`). */
  commit: string;
}

/**
 * Creates a bare repository at `dir` (made if missing) whose `branch` (also its HEAD) holds one
 * commit with `files` (path in the repository → content).
 */
export async function createBareRepo(dir: string, files: Record<string, string>, branch = 'main'): Promise<BareRepo> {
  await mkdir(dir, { recursive: true });
  await git(['init', '--quiet', '--bare', `--initial-branch=${branch}`, dir]);
  const commit = await pushCommit({ path: dir }, files, branch);
  return { path: dir, url: `file://${dir}`, commit };
}

/**
 * Pushes a commit to `branch` of the bare repository (on top of it when the branch exists, else
 * as a new root) that writes `files` (others stay as they were); returns its sha.
 */
export async function pushCommit(repo: { path: string }, files: Record<string, string>, branch = 'main', message = 'change'): Promise<string> {
  const work = await mkdtemp(path.join(tmpdir(), 'furrow-git-work-'));
  try {
    await git(['init', '--quiet', `--initial-branch=${branch}`, work]);
    const exists = await git(['ls-remote', '--heads', repo.path, `refs/heads/${branch}`]);
    if (exists) {
      await git(['fetch', '--quiet', repo.path, `refs/heads/${branch}`], work);
      await git(['reset', '--quiet', '--hard', 'FETCH_HEAD'], work);
    }
    for (const [file, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(work, file)), { recursive: true });
      await writeFile(path.join(work, file), text);
    }
    await git(['add', '--all'], work);
    await git(['commit', '--quiet', '--allow-empty', '-m', message], work);
    await git(['push', '--quiet', repo.path, `HEAD:refs/heads/${branch}`], work);
    return await git(['rev-parse', 'HEAD'], work);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
