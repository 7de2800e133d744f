const FORMS = 'ssh://[user@]host[:port]/path, user@host:path, https://host/path, http://host/path, file:///path or an absolute path';
/** `user@host:path`, scp's form of an SSH remote (host may be a bracketed IPv6 address). */
const SCP_FORM = /^[A-Za-z0-9._][A-Za-z0-9._-]*@(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.][A-Za-z0-9.-]*):(?!\/\/).+$/;

/**
 * Why git must not be given `url` as a repository's remote, or undefined when it is one of the
 * forms Furrow reaches repositories by. Everything else is refused: other transports (`ext::`
 * runs commands), words git would read as options, and passwords in URLs (they would be shown
 * to every reader of the repository; use a deploy key).
 */
export function repositoryUrlProblem(url: string, opts: { allowLocal: boolean }): string | undefined {
  const invalid = `is not a repository URL; use ${FORMS}`;
  // No control characters or spaces.
  if (/[\s\u0000-\u001f\u007f]/.test(url)) return `${JSON.stringify(url)} contains spaces or control characters`;
  const local = 'is on the server\'s own disk, which FURROW_LOCAL_REPOSITORIES does not allow';
  if (url.startsWith('/')) return url.length <= 1 ? `"/" ${invalid}` : opts.allowLocal ? undefined : `"${url}" ${local}`;
  if (SCP_FORM.test(url)) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `"${url}" ${invalid}`;
  }
  switch (parsed.protocol) {
    case 'file:':
      if (parsed.pathname.length <= 1 || parsed.host) return `"${url}" must be file:///absolute/path`;
      return opts.allowLocal ? undefined : `"${url}" ${local}`;
    case 'ssh:':
    case 'https:':
    case 'http:':
      if (!parsed.hostname) return `"${url}" names no host`;
      // ssh would read `-…` as an option (git refuses it too; this says so before a check runs).
      if (parsed.hostname.startsWith('-') || decodeURIComponent(parsed.username).startsWith('-')) return `"${url}": a host or user name must not start with "-"`;
      if (parsed.password) return 'put no password in the URL: Furrow reaches the repository with its deploy key';
      if (parsed.pathname.length <= 1) return `"${url}" names no repository path`;
      return undefined;
    default:
      return `"${url}" ${invalid}`;
  }
}
