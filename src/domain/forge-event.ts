import type { ForgeName } from './forge-delivery.js';

/** How a ref changed: it appeared, moved to another commit, or went away (as in Harrow). */
export type RefChangeType = 'added' | 'changed' | 'removed';
export const REF_CHANGE_TYPES: readonly RefChangeType[] = ['added', 'changed', 'removed'];

/** A branch or tag that changed, seen in a push delivery or by polling. */
export interface RefChange {
  /** The full ref: `refs/heads/main`, `refs/tags/v1`. */
  ref: string;
  type: RefChangeType;
  /** The commit before (null when added) and after (null when removed). */
  before: string | null;
  after: string | null;
  /** Paths the pushed commits touched; null when not known (too many commits for the payload, or polled). */
  paths: string[] | null;
}

/** The pull request actions a run may follow, with GitHub's names. */
export type PullRequestAction = 'opened' | 'synchronize' | 'reopened' | 'closed' | 'edited';
export const PULL_REQUEST_ACTIONS: readonly PullRequestAction[] = ['opened', 'synchronize', 'reopened', 'closed', 'edited'];

export interface PullRequest {
  action: PullRequestAction;
  number: number;
  /** The commit at the head of the pull request, and the ref the forge keeps it under in the base repository. */
  head: { sha: string; ref: string; branch: string };
  /** The branch it would merge into. */
  base: string;
  /** Whether it comes from another repository (a fork). */
  fork: boolean;
  title: string;
}

/** What a delivery means for starting runs. */
/** What a ping is answered with. */
export const PING_SUMMARY = 'ping: the webhook reaches Furrow';

export type ForgeEvent =
  | { kind: 'ping' }
  | { kind: 'push'; change: RefChange }
  | { kind: 'pull_request'; pullRequest: PullRequest }
  /** Any other event (release, issues…), by its name with GitHub's spelling where there is one. */
  | { kind: 'other'; name: string }
  /** A push or pull request event that starts nothing (a pull request labelled, a commit comment). */
  | { kind: 'ignored'; why: string };

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) ? v : null);

/** A commit id, or null for the all-zero id forges send for "none". */
const commit = (v: unknown): string | null => {
  const s = str(v);
  return s && /^[0-9a-f]{40}$/i.test(s) && !/^0+$/.test(s) ? s.toLowerCase() : null;
};

/** The paths of a push's commits, or null when the payload does not list every commit. */
function pushedPaths(commits: unknown, total: number | null): string[] | null {
  if (!Array.isArray(commits)) return null;
  // GitHub lists up to 2048 commits, GitLab up to 20: a payload that holds fewer than were pushed
  // does not say every path.
  if ((total !== null && total > commits.length) || commits.length >= 2048) return null;
  const paths = new Set<string>();
  for (const c of commits) {
    for (const key of ['added', 'modified', 'removed']) {
      const list = obj(c)[key];
      if (Array.isArray(list)) for (const p of list) if (typeof p === 'string') paths.add(p);
    }
  }
  return [...paths];
}

/** The commit a push leaves its ref at: for a tag, the commit it tags (`peeled`, when the payload says). */
function tagged(p: Json, peeled: string | null): string | null {
  const after = commit(p.after);
  return after && str(p.ref)?.startsWith('refs/tags/') ? (peeled ?? after) : after;
}

/** A push from its ref and commits; undefined when the payload lacks them. */
function push(ref: string | null, before: string | null, after: string | null, paths: string[] | null): ForgeEvent | undefined {
  if (!ref || !ref.startsWith('refs/') || (!before && !after)) return undefined;
  const type: RefChangeType = !before ? 'added' : !after ? 'removed' : 'changed';
  return { kind: 'push', change: { ref, type, before, after, paths: type === 'removed' ? [] : paths } };
}

function githubOrGitea(forge: ForgeName, event: string, p: Json): ForgeEvent | undefined {
  switch (event) {
    case 'ping':
      return { kind: 'ping' };
    case 'push':
      // An annotated tag's `after` is the tag object: the commit it tags is the head commit.
      return push(str(p.ref), commit(p.before), tagged(p, commit(obj(p.head_commit).id)), pushedPaths(p.commits, num(p.total_commits)));
    case 'delete':
      // GitHub also sends a push with the deletion; Gitea and Forgejo send only this.
      if (forge === 'github') return { kind: 'ignored', why: 'GitHub reports the deletion as a push too' };
      if (!str(p.ref)) return undefined;
      return { kind: 'push', change: { ref: `refs/${p.ref_type === 'tag' ? 'tags' : 'heads'}/${str(p.ref)}`, type: 'removed', before: commit(p.sha), after: null, paths: [] } };
    case 'create':
      return { kind: 'ignored', why: 'a new branch or tag comes as a push too' };
    case 'pull_request': {
      const pr = obj(p.pull_request);
      const head = obj(pr.head);
      const base = obj(pr.base);
      const number = num(p.number) ?? num(pr.number);
      const sha = commit(head.sha);
      const raw = str(p.action);
      const action = raw === 'synchronized' ? 'synchronize' : raw;
      if (number === null || !sha || !str(base.ref)) return undefined;
      if (!(PULL_REQUEST_ACTIONS as readonly string[]).includes(action ?? '')) return { kind: 'ignored', why: `pull request action "${raw}" starts no run` };
      const fork = str(obj(head.repo).full_name) !== str(obj(base.repo).full_name);
      return {
        kind: 'pull_request',
        pullRequest: { action: action as PullRequestAction, number, head: { sha, ref: `refs/pull/${number}/head`, branch: str(head.ref) ?? '' }, base: str(base.ref)!, fork, title: str(pr.title) ?? '' },
      };
    }
    default:
      return { kind: 'other', name: event };
  }
}

/** GitLab's hook names, with GitHub's name for the same event. */
const GITLAB_NAMES: Record<string, string> = { 'Release Hook': 'release', 'Issue Hook': 'issues', 'Note Hook': 'comment', 'Pipeline Hook': 'pipeline', 'Job Hook': 'job', 'Deployment Hook': 'deployment', 'Wiki Page Hook': 'wiki' };

function gitlab(event: string, p: Json): ForgeEvent | undefined {
  switch (event) {
    case 'Push Hook':
    case 'Tag Push Hook':
      return push(str(p.ref), commit(p.before), tagged(p, commit(p.checkout_sha)), pushedPaths(p.commits, num(p.total_commits_count)));
    case 'Merge Request Hook': {
      const mr = obj(p.object_attributes);
      const number = num(mr.iid);
      const sha = commit(obj(mr.last_commit).id);
      if (number === null || !sha || !str(mr.target_branch)) return undefined;
      const raw = str(mr.action);
      // An update with `oldrev` brought new commits; one without changed only the title or labels.
      const action = raw === 'open' ? 'opened' : raw === 'reopen' ? 'reopened' : raw === 'close' || raw === 'merge' ? 'closed' : raw === 'update' ? (mr.oldrev ? 'synchronize' : 'edited') : null;
      if (!action) return { kind: 'ignored', why: `merge request action "${raw}" starts no run` };
      return {
        kind: 'pull_request',
        pullRequest: {
          action,
          number,
          head: { sha, ref: `refs/merge-requests/${number}/head`, branch: str(mr.source_branch) ?? '' },
          base: str(mr.target_branch)!,
          fork: num(mr.source_project_id) !== num(mr.target_project_id),
          title: str(mr.title) ?? '',
        },
      };
    }
    default:
      return { kind: 'other', name: GITLAB_NAMES[event] ?? event };
  }
}

/**
 * What a forge's delivery means: a ping, a ref that changed, a pull request, or another event.
 * Undefined when a push or pull request payload lacks what it must hold.
 */
export function forgeEvent(forge: ForgeName, event: string, payload: unknown): ForgeEvent | undefined {
  const p = obj(payload);
  return forge === 'gitlab' ? gitlab(event, p) : githubOrGitea(forge, event, p);
}
