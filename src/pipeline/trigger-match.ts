import type { PullRequest, RefChange, RefChangeType } from '../domain/forge-event.js';
import { matchesRefPatterns } from '../domain/ref-pattern.js';
import type { PushFilter, WorkflowTriggers } from './workflow-model.js';

/** A filter's patterns with its ignore patterns as GitHub combines them: matched and not ignored. */
function included(patterns: string[], ignore: string[], name: string): boolean {
  return (patterns.length === 0 || matchesRefPatterns(patterns, name)) && !(ignore.length > 0 && matchesRefPatterns(ignore, name));
}

/** The branch or tag name of a full ref, and which of the two it is. */
function refName(ref: string): { kind: 'branch' | 'tag' | 'other'; name: string } {
  if (ref.startsWith('refs/heads/')) return { kind: 'branch', name: ref.slice(11) };
  if (ref.startsWith('refs/tags/')) return { kind: 'tag', name: ref.slice(10) };
  return { kind: 'other', name: ref };
}

/** Whether a push filter's paths let a change through: `undefined` when the change's paths are not known. */
function pathsMatch(filter: PushFilter, paths: string[] | null): boolean | undefined {
  if (filter.paths.length === 0 && filter.pathsIgnore.length === 0) return true;
  if (paths === null) return undefined;
  // As on GitHub: with `paths`, one changed path must match; with `paths-ignore`, one must not be ignored.
  return paths.some((p) => included(filter.paths, filter.pathsIgnore, p));
}

/**
 * Whether `on.push` starts a run for a ref change, with GitHub's rules: a removal never does;
 * branch filters apply to branches and tag filters to tags, and setting only one kind keeps the
 * other kind out; paths filters apply to branches only. `paths-unknown` when only the changed
 * paths (not known for the change) would decide.
 */
export function pushMatches(filter: PushFilter, change: RefChange): boolean | 'paths-unknown' {
  if (change.type === 'removed') return false;
  const { kind, name } = refName(change.ref);
  const branchFilters = filter.branches.length + filter.branchesIgnore.length > 0;
  const tagFilters = filter.tags.length + filter.tagsIgnore.length > 0;
  if (kind === 'tag') return !(branchFilters && !tagFilters) && included(filter.tags, filter.tagsIgnore, name);
  if (kind !== 'branch' || (tagFilters && !branchFilters) || !included(filter.branches, filter.branchesIgnore, name)) return false;
  return pathsMatch(filter, change.paths) ?? 'paths-unknown';
}

/** Whether `on.delete` starts a run for a ref change: a removed branch or tag its patterns match (any when none). */
export function deleteMatches(filter: NonNullable<WorkflowTriggers['delete']>, change: RefChange): boolean {
  if (change.type !== 'removed') return false;
  const { kind, name } = refName(change.ref);
  if (kind === 'other') return false;
  const patterns = kind === 'branch' ? filter.branches : filter.tags;
  const others = kind === 'branch' ? filter.tags : filter.branches;
  if (patterns.length === 0) return others.length === 0;
  return matchesRefPatterns(patterns, name);
}

/** Whether `on.pull_request` starts a run: one of its actions, into a base branch it matches. */
export function pullRequestMatches(filter: NonNullable<WorkflowTriggers['pullRequest']>, pr: PullRequest): boolean {
  return filter.types.includes(pr.action) && included(filter.branches, filter.branchesIgnore, pr.base);
}

/**
 * Whether a `git` trigger fires for a ref change, as in Harrow: one of its change types (any when
 * none) of a ref one of its patterns matches (any when none). A pattern starting with `refs/` is
 * matched against the full ref, any other against the branch or tag name.
 */
export function gitTriggerMatches(trigger: { refs: string[]; changes: RefChangeType[] | string[] }, change: RefChange): boolean {
  if (trigger.changes.length > 0 && !(trigger.changes as string[]).includes(change.type)) return false;
  if (trigger.refs.length === 0) return true;
  // Each pattern as one on full refs (a name pattern stands for a branch or a tag of that name),
  // kept in order, so that a later `!pattern` excludes what an earlier one matched.
  const full = trigger.refs.flatMap((p) => {
    const [not, body] = p.startsWith('!') ? ['!', p.slice(1)] : ['', p];
    return body.startsWith('refs/') ? [p] : [`${not}refs/heads/${body}`, `${not}refs/tags/${body}`];
  });
  return matchesRefPatterns(full, change.ref);
}
