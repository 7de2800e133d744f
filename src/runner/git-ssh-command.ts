import { shellQuote } from './shell-quote.js';


export interface GitSshOptions {
  /** The private key file; without one, ssh offers no key at all. */
  keyFile: string | undefined;
  knownHostsFile: string;
  /**
   * Trust the host's key on first contact and write it to `knownHostsFile` (OpenSSH
   * `accept-new`); otherwise only keys already in that file are accepted.
   */
  acceptNew: boolean;
}

/**
 * The value of GIT_SSH_COMMAND, which git hands to `sh -c`: every path is quoted. The system and
 * user ssh configs are ignored (-F /dev/null) so that no agent, other identity or hashed
 * known_hosts sneaks in, and ssh never prompts.
 */
export function gitSshCommand(opts: GitSshOptions): string {
  const argv = [
    'ssh',
    '-F',
    '/dev/null',
    ...(opts.keyFile ? ['-i', opts.keyFile] : []),
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-o',
    'BatchMode=yes',
    '-o',
    `UserKnownHostsFile=${opts.knownHostsFile}`,
    // Only the pinned keys: a host in the system's own list must not get past them.
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    `StrictHostKeyChecking=${opts.acceptNew ? 'accept-new' : 'yes'}`,
    // Keeps "Permanently added … to the list of known hosts" out of git's error output.
    '-o',
    'LogLevel=ERROR',
  ];
  return argv.map((a) => (/^[A-Za-z0-9_=./:-]+$/.test(a) ? a : shellQuote(a))).join(' ');
}

/** Transports git may use: never `ext::` (runs commands) or other helpers a URL could name. */
export const GIT_ALLOW_PROTOCOL = 'file:git:http:https:ssh';

/**
 * The git config that lets the job user fetch from a repository on the runner's own disk
 * (`file://` or a path) although another user owns it, which git otherwise refuses as "dubious
 * ownership": only that one directory is trusted. It must be the user's global config (HOME):
 * git drops config from the environment when it starts the local upload-pack.
 */
export function localRepositoryTrust(url: string): string | undefined {
  const dir = url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url.startsWith('/') ? url : undefined;
  return dir === undefined ? undefined : `[safe]\n\tdirectory = ${JSON.stringify(dir)}\n`;
}
