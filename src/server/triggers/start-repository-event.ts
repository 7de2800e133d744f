import { PING_SUMMARY, type ForgeEvent, type PullRequest, type RefChange } from '../../domain/forge-event.js';
import { compileWorkflow } from '../../pipeline/compile-workflow.js';
import { deleteMatches, gitTriggerMatches, pullRequestMatches, pushMatches } from '../../pipeline/trigger-match.js';
import type { WorkflowTriggers } from '../../pipeline/workflow-model.js';
import { AppError } from '../app-error.js';
import { changedPaths, CommitNotFoundError } from '../git/read-workflow-files.js';
import { GitError } from '../git/run-git.js';
import { repositoryRemote } from '../keys/repository-remote.js';
import { mayStartLater, startRun, type RunStartDeps } from '../runs/start-run.js';
import type { DeliveryOutcome } from '../store/delivery-store.js';
import { eventCandidates, recordGitFire, type EventCandidate } from '../store/event-trigger-store.js';
import type { RepositoryRow } from '../store/repository-store.js';
import { syncFileWorkflowsAtHead } from './sync-file-triggers.js';
import type { RunTarget } from './workflow-plan.js';

/** Where an event came from: a webhook delivery (by id), or a poll of the repository. */
export type EventSource = { deliveryId: string; forge: string } | { poll: true };

/** How one event starts runs: where they run, what each is keyed by, and whether a workflow's `on` wants it. */
interface EventStart {
  summary: string;
  target: RunTarget;
  key: string;
  reason: Record<string, unknown>;
  /** The ref change a `git` trigger may fire for. */
  change: RefChange | null;
  /** For a pull request: whether its runs get the project's secrets (never a fork's). */
  pullRequestSecrets?: boolean;
  /** Why the workflow's `on` does not want this event (null: it does). */
  wants(on: WorkflowTriggers): Promise<string | null>;
}

const short = (ref: string) => ref.replace(/^refs\/(heads|tags)\//, '');

/** How a ref change starts runs: a branch or tag at its new commit; a removal at the default branch. */
function refChangeStart(deps: RunStartDeps, repo: RepositoryRow, change: RefChange, source: EventSource): EventStart {
  const via = 'poll' in source ? { via: 'poll' } : { via: 'webhook', deliveryId: source.deliveryId, forge: source.forge };
  const reason = { type: 'push', ref: change.ref, change: change.type, before: change.before, after: change.after, ...via };
  if (change.type === 'removed') {
    // A poll always knows the commit a removed ref was at; a Gitea deletion does not say it.
    const which = change.before ?? `delivery:${'deliveryId' in source ? source.deliveryId : ''}`;
    return {
      summary: `${change.ref} removed`,
      target: { event: 'delete' },
      key: `git:${change.ref}:removed:${which}`,
      reason,
      change,
      wants: async (on) => (on.delete && deleteMatches(on.delete, change) ? null : on.delete ? `its on.delete does not match ${short(change.ref)}` : 'its on has no delete'),
    };
  }
  let paths: Promise<string[] | null> | undefined;
  /** The paths the change touched: from the delivery, else from git (null when git cannot tell). */
  const touched = () =>
    (paths ??= change.paths !== null || !change.before
      ? Promise.resolve(change.paths)
      : changedPaths(repositoryRemote(deps.secretBox, repo), change.before, change.after!, { dataDir: deps.config.dataDir, timeoutSeconds: deps.config.gitTimeoutSeconds }).catch((err: unknown) => {
          if (err instanceof CommitNotFoundError) return null; // the old commit was pushed away: paths do not decide
          if (err instanceof GitError) throw new AppError('repository_unreachable', `git could not read the repository: ${err.message}`);
          throw err;
        }));
  return {
    summary: `${change.ref} ${change.type} at ${change.after!.slice(0, 12)}`,
    target: { ref: change.ref, commit: change.after!, event: change.ref.startsWith('refs/tags/') ? 'tag' : 'push' },
    key: `git:${change.ref}:${change.after}`,
    reason,
    change,
    wants: async (on) => {
      if (!on.push) return 'its on has no push';
      let match = pushMatches(on.push, change);
      // A change whose paths are not known runs where only its paths would decide.
      if (match === 'paths-unknown') match = (await touched()) === null || pushMatches(on.push, { ...change, paths: await touched() }) === true;
      return match ? null : `its on.push does not match ${short(change.ref)}${on.push.paths.length + on.push.pathsIgnore.length > 0 ? ' (or the paths it changed)' : ''}`;
    },
  };
}

function pullRequestStart(pr: PullRequest, source: { deliveryId: string; forge: string }, projectAllows: boolean): EventStart {
  return {
    pullRequestSecrets: projectAllows && !pr.fork,
    summary: `pull request #${pr.number} ${pr.action} at ${pr.head.sha.slice(0, 12)}`,
    target: { ref: pr.head.ref, commit: pr.head.sha, event: 'pull_request' },
    key: `pull_request:${pr.number}:${pr.action}:${pr.head.sha}`,
    reason: { type: 'pull_request', number: pr.number, action: pr.action, base: pr.base, head: pr.head.branch, fork: pr.fork, title: pr.title, via: 'webhook', ...source },
    change: null,
    wants: async (on) =>
      on.pullRequest && pullRequestMatches(on.pullRequest, pr) ? null : on.pullRequest ? `its on.pull_request does not match ${pr.action} into ${pr.base}` : 'its on has no pull_request',
  };
}

function otherEventStart(name: string, source: { deliveryId: string; forge: string }): EventStart {
  return {
    summary: `${name} event`,
    target: { event: 'webhook' },
    key: `delivery:${source.deliveryId}`,
    reason: { type: 'webhook', event: name, via: 'webhook', ...source },
    change: null,
    wants: async (on) => (on.webhook && (on.webhook.events.length === 0 || on.webhook.events.includes(name)) ? null : on.webhook ? `its on.webhook does not list ${name}` : 'its on has no webhook'),
  };
}

async function projectAllowsPullRequestSecrets(deps: RunStartDeps, projectId: string): Promise<boolean> {
  const p = await deps.database.db.selectFrom('projects').select('pull_request_secrets').where('id', '=', projectId).executeTakeFirst();
  return p?.pull_request_secrets ?? false;
}

/** A start's problem that is the workflow's alone (its file is broken or absent), as the reason it did not start. */
function notStarted(err: unknown): string {
  return err instanceof AppError ? `${err.code}: ${err.message}` : String(err);
}

/**
 * Starts the runs an event of a repository sets off, through the one start entry point: for each
 * workflow that reads the repository, a run when its `on` (read at the event's commit for a file)
 * wants the event or one of its `git` triggers fires for the ref change. Each run is keyed by
 * the workflow and what it is for (the ref and commit of a push), so the same push seen again
 * (redelivered, or both delivered and polled) starts nothing more. A start that fails for a
 * passing reason (the repository or database out of reach) throws once the others were tried, so
 * that the whole event is tried again; one that fails for good is the workflow's reason.
 */
export async function startRepositoryEvent(deps: RunStartDeps, repo: RepositoryRow, event: ForgeEvent, source: EventSource): Promise<DeliveryOutcome> {
  const delivery = 'deliveryId' in source ? source : null;
  const start =
    event.kind === 'push'
      ? refChangeStart(deps, repo, event.change, source)
      : event.kind === 'pull_request' && delivery
        ? pullRequestStart(event.pullRequest, delivery, await projectAllowsPullRequestSecrets(deps, repo.project_id))
        : event.kind === 'other' && delivery
          ? otherEventStart(event.name, delivery)
          : undefined;
  const outcome: DeliveryOutcome = { summary: start?.summary ?? (event.kind === 'ping' ? PING_SUMMARY : event.kind === 'ignored' ? event.why : 'nothing to start'), runs: [], skipped: [] };
  if (!start) return outcome;
  let passing: unknown;
  for (const wf of await eventCandidates(deps.database.db, repo.id)) {
    try {
      const result = await startFor(deps, wf, start, delivery?.deliveryId);
      if (result.notWanted !== undefined) outcome.skipped.push({ workflowId: wf.id, workflow: wf.name, reason: result.notWanted });
      else outcome.runs.push({ workflowId: wf.id, workflow: wf.name, runId: result.run.id, number: Number(result.run.number), ...(result.existing ? { existing: true as const } : {}) });
    } catch (err) {
      if (mayStartLater(err)) passing ??= err;
      else outcome.skipped.push({ workflowId: wf.id, workflow: wf.name, reason: notStarted(err) });
    }
  }
  // A new head of the default branch may bring other schedules and chains for its files.
  if (event.kind === 'push' && event.change.ref === `refs/heads/${repo.default_branch}` && event.change.after) {
    await syncFileWorkflowsAtHead(deps, repo, event.change.after).catch((err: unknown) => {
      if (mayStartLater(err)) passing ??= err; // else (the deploy key does not open) the files wait for the next push
    });
  }
  if (passing) throw passing;
  return outcome;
}

/** What came of one workflow: a run (perhaps one started before), or why none started. */
type StartedFor = { notWanted: string; run?: undefined } | { notWanted?: undefined; run: { id: string; number: number | string }; existing: boolean };

async function startFor(deps: RunStartDeps, wf: EventCandidate, start: EventStart, deliveryId: string | undefined): Promise<StartedFor> {
  const fired = start.change ? wf.gitTriggers.filter((t) => gitTriggerMatches(t, start.change!)) : [];
  // A script has no `on`: only its git triggers start it.
  if (fired.length === 0 && !wf.hasOn) return { notWanted: 'it is a script, and none of its git triggers matches' };
  // A definition's `on` is known without planning (which asks the repository): one that does not
  // want the event costs no git command.
  const known = fired.length === 0 && wf.definition !== null ? compileWorkflow(wf.definition, `${wf.name}.yml`).workflow?.on : undefined;
  const notWanted = known && (await start.wants(known));
  if (notWanted) return { notWanted };
  const parameters = fired[0]?.parameters ?? {};
  const reason = fired.length > 0 ? { ...start.reason, type: 'git', triggerId: fired[0]!.id } : start.reason;
  const result = await startRun(deps, {
    workflowId: wf.id,
    target: start.target,
    parameters,
    reason,
    actorUserId: null,
    triggerKey: start.key,
    ...(deliveryId ? { deliveryId } : {}),
    ...(start.pullRequestSecrets ? { pullRequestSecrets: true } : {}),
    wants: fired.length > 0 ? undefined : (plan) => start.wants(plan.on),
  });
  if ('notWanted' in result) return { notWanted: result.notWanted };
  for (const t of fired) await recordGitFire(deps.database.db, t.id, result.id);
  return { run: result, existing: 'existing' in result };
}
