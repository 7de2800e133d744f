import { execFile } from 'node:child_process';

/** A git command that failed; `message` is what git said on stderr (trimmed). */
export class GitError extends Error {
  override name = 'GitError';
  constructor(
    message: string,
    readonly exitCode: number | null,
  ) {
    super(message);
  }
}

export interface RunGitOptions {
  env: Record<string, string>;
  timeoutSeconds: number;
  cwd?: string;
}

/** Runs `git ARGS` (argv, no shell); resolves with its stdout, rejects with a GitError. */
export function runGit(args: string[], opts: RunGitOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      args,
      { env: opts.env, cwd: opts.cwd, timeout: opts.timeoutSeconds * 1000, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const { killed, code } = err as { killed?: boolean; code?: number | string };
        if (killed) return reject(new GitError(`git ${args[0]} did not finish within ${opts.timeoutSeconds} s`, null));
        reject(new GitError(stderr.trim() || err.message, typeof code === 'number' ? code : null));
      },
    );
  });
}
