import type { RunStatus } from './run-state.js';

export type StatusForgeName = 'github' | 'gitlab' | 'gitea';
export type CommitState = 'pending' | 'success' | 'failure' | 'error';

/** The commit state that reports a run's status: success, failure (failed, timed out) or error (canceled, skipped). */
export function commitStateOf(status: RunStatus): CommitState {
  if (status === 'succeeded') return 'success';
  if (status === 'failed' || status === 'timed_out') return 'failure';
  if (status === 'queued' || status === 'running' || status === 'waiting') return 'pending';
  return 'error';
}

/** The line the forge shows beside a status. */
export function statusDescription(status: RunStatus, number: number): string {
  return `Run #${number} ${status.replace('_', ' ')}`;
}

/** The host and path of a git remote URL (`git@host:a/b.git`, `ssh://git@host:22/a/b`, `https://host/a/b.git`); undefined for a local one. */
export function remoteHostAndPath(url: string): { host: string; path: string } | undefined {
  const scp = /^[^@/\s]+@([^:/\s]+):(?!\/)(.+)$/.exec(url);
  const full = /^(?:ssh|https?|git):\/\/(?:[^@/]+@)?([^/:]+)(?::\d+)?\/(.+)$/.exec(url);
  const m = scp ?? full;
  if (!m) return undefined;
  return { host: m[1]!, path: m[2]!.replace(/\.git\/?$/, '').replace(/\/+$/, '') };
}

/** The forge's API a repository's statuses go to when none is given: GitHub's, or the repository's host. */
export function defaultApiUrl(forge: StatusForgeName, repositoryUrl: string): string | undefined {
  const remote = remoteHostAndPath(repositoryUrl);
  if (forge === 'github') return !remote || remote.host === 'github.com' ? 'https://api.github.com' : `https://${remote.host}/api/v3`;
  return remote && `https://${remote.host}`;
}

export interface StatusTarget {
  forge: StatusForgeName;
  /** The API's base URL (`https://api.github.com`, `https://gitlab.example.com`). */
  apiUrl: string;
  /** `owner/name`, or GitLab's project path (or id). */
  repository: string;
  token: string;
}

export interface CommitStatus {
  sha: string;
  state: CommitState;
  /** What the forge lists the status under: one per workflow. */
  context: string;
  description: string;
  targetUrl: string;
}

/** The request that sets a commit status on each forge's API (GitHub's statuses API, Gitea's, GitLab's). */
export function statusRequest(t: StatusTarget, s: CommitStatus): { url: string; headers: Record<string, string>; body: string } {
  const base = t.apiUrl.replace(/\/+$/, '');
  const json = { 'content-type': 'application/json', 'user-agent': 'Furrow' };
  if (t.forge === 'gitlab') {
    // GitLab's states: pending, running, success, failed, canceled.
    const state = { pending: 'pending', success: 'success', failure: 'failed', error: 'canceled' }[s.state];
    return {
      url: `${base}/api/v4/projects/${encodeURIComponent(t.repository)}/statuses/${s.sha}`,
      headers: { ...json, 'private-token': t.token },
      body: JSON.stringify({ state, name: s.context, description: s.description, target_url: s.targetUrl }),
    };
  }
  const body = JSON.stringify({ state: s.state, context: s.context, description: s.description, target_url: s.targetUrl });
  // Each segment of owner/name encoded: a name cannot reach another route (`../`).
  const repo = t.repository.split('/').map(encodeURIComponent).join('/');
  if (t.forge === 'gitea') return { url: `${base}/api/v1/repos/${repo}/statuses/${s.sha}`, headers: { ...json, authorization: `token ${t.token}` }, body };
  return { url: `${base}/repos/${repo}/statuses/${s.sha}`, headers: { ...json, authorization: `Bearer ${t.token}`, accept: 'application/vnd.github+json' }, body };
}

/** Whether a forge's answer may change if the status is sent again (a server error, a rate limit, no answer). */
export const worthRetrying = (httpStatus: number | null) => httpStatus === null || httpStatus >= 500 || httpStatus === 408 || httpStatus === 429;
