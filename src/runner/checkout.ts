import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { CheckoutSpec } from '../protocol/messages.js';
import { JOB_PATH, writeStepScript } from './executors/spawn-step.js';
import { GIT_ALLOW_PROTOCOL, gitSshCommand, localRepositoryTrust } from './git-ssh-command.js';
import type { JobUser } from './job-user.js';
import { killProcessTree, pidMark, processTree } from './process-tree.js';

export interface CheckoutOptions {
  /** Where the commit is checked out (made by `git init` when missing). */
  workspace: string;
  /** A private directory outside the workspace: the key and known_hosts go there for the checkout's duration. */
  scratch: string;
  /** The user git runs as (the runner is root); the key files are made its own. */
  user?: JobUser | undefined;
  output: (data: Buffer) => void;
  signal: AbortSignal;
}

/** Time between the polite SIGTERM and the SIGKILL when a checkout is aborted. */
const KILL_GRACE_MS = 1000;

/** The git commands that check out `spec.commit` into `workspace`: a fetch of that one commit (shallow unless depth is 0). */
export function checkoutArgv(spec: CheckoutSpec, workspace: string): string[][] {
  const depth = spec.depth > 0 ? ['--depth', String(spec.depth)] : [];
  return [
    ['git', 'init', '-q', workspace],
    ['git', '-C', workspace, 'remote', 'add', 'origin', spec.url],
    ['git', '-C', workspace, 'fetch', ...depth, '--no-tags', 'origin', spec.commit],
    ['git', '-C', workspace, 'checkout', '-q', '--detach', 'FETCH_HEAD'],
  ];
}

/** Runs one command in its own process group; resolves with its exit code (null: ended by a signal or abort). */
function runCommand(argv: string[], env: Record<string, string>, opts: CheckoutOptions, marker: string): Promise<number | null> {
  return new Promise((resolve) => {
    const [command, ...args] = argv;
    const born = pidMark();
    const child = spawn(command!, args, {
      cwd: opts.scratch,
      env,
      detached: true, // own process group: ssh and git's helpers are killed with it
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.user ? { uid: opts.user.uid, gid: opts.user.gid } : {}),
    });
    child.stdout.on('data', opts.output);
    child.stderr.on('data', opts.output);
    const tree = child.pid !== undefined ? processTree(child.pid, marker, born) : undefined;
    const onAbort = () => void (tree && killProcessTree(tree, KILL_GRACE_MS));
    opts.signal.addEventListener('abort', onAbort, { once: true });
    const done = (code: number | null) => {
      opts.signal.removeEventListener('abort', onAbort);
      resolve(code);
    };
    child.once('error', (err) => {
      opts.output(Buffer.from(`${err.message}\n`));
      done(null);
    });
    child.once('close', (code) => done(code));
  });
}

/**
 * Checks out `spec.commit` into the workspace as the job user: the deploy key and the pinned
 * host keys are written to the scratch dir (0600, the job user's) for the duration, and ssh
 * accepts only the pinned host keys (any on first contact when none are pinned). Each command is
 * echoed to `output` before its own output. Stops at the first failing command, or on abort
 * (killing the command's process group); the key files are removed in every case.
 */
export async function runCheckout(spec: CheckoutSpec, opts: CheckoutOptions): Promise<{ exitCode: number | null }> {
  // git would read either as an option.
  if (spec.url.startsWith('-') || spec.commit.startsWith('-')) {
    opts.output(Buffer.from(`refusing to check out ${JSON.stringify(spec.commit)} of ${JSON.stringify(spec.url)}: neither may start with "-"\n`));
    return { exitCode: 1 };
  }
  const id = randomBytes(6).toString('hex');
  const keyFile = spec.privateKey ? path.join(opts.scratch, `checkout-key-${id}`) : undefined;
  const knownHostsFile = path.join(opts.scratch, `checkout-known-hosts-${id}`);
  const marker = `FURROW_CHECKOUT=${id}`;
  const trust = localRepositoryTrust(spec.url);
  // HOME is the scratch dir: this is git's global config for the checkout.
  const gitConfig = path.join(opts.scratch, '.gitconfig');
  try {
    if (keyFile) writeStepScript(keyFile, spec.privateKey!.endsWith('\n') ? spec.privateKey! : `${spec.privateKey}\n`, opts.user);
    writeStepScript(knownHostsFile, spec.knownHosts?.trim() ? `${spec.knownHosts.trim()}\n` : '', opts.user);
    if (trust) writeStepScript(gitConfig, trust, opts.user);
    const env = {
      PATH: JOB_PATH,
      HOME: opts.scratch,
      LANG: 'C.UTF-8',
      GIT_TERMINAL_PROMPT: '0',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_ALLOW_PROTOCOL,
      GIT_SSH_COMMAND: gitSshCommand({ keyFile, knownHostsFile, acceptNew: !spec.knownHosts?.trim() }),
      FURROW_CHECKOUT: id,
    };
    for (const argv of checkoutArgv(spec, opts.workspace)) {
      if (opts.signal.aborted) return { exitCode: null };
      opts.output(Buffer.from(`$ ${argv.join(' ')}\n`));
      const exitCode = await runCommand(argv, env, opts, marker);
      if (exitCode !== 0) return { exitCode };
    }
    return { exitCode: 0 };
  } finally {
    await Promise.all([keyFile, knownHostsFile, trust && gitConfig].map((f) => f && rm(f, { force: true })));
  }
}
