import { sql } from 'kysely';
import { matchesRefPatterns } from '../../domain/ref-pattern.js';
import { AppError } from '../app-error.js';
import { branchAndTag } from '../runs/queue-run.js';
import { mayStartLater, startRun, type RunStartDeps } from '../runs/start-run.js';
import { chainsAfter, recordChainFire } from '../store/trigger-store.js';

/** How many chained runs deep a chain may go: a loop of chains ends there. */
export const MAX_CHAIN_DEPTH = 10;

/**
 * Starts the workflows that follow the finished run `runId` (chains: API triggers of kind
 * `workflow`, and `on.workflow_run` of definitions), each whose status and branch filters it
 * passes, through the one start entry point. A chained run runs at the finished run's commit when
 * both workflows read the same repository, else at its own default. Each start is keyed by the
 * chain and the finished run: the task may run again (a failure for a passing reason makes
 * graphile-worker try it again) and never starts one twice. A chain of chains stops after
 * MAX_CHAIN_DEPTH runs, recorded as the chain's error.
 */
export async function startChainedRuns(deps: RunStartDeps, runId: string): Promise<void> {
  const { db } = deps.database;
  const run = await db
    .selectFrom('runs')
    .select(['id', 'status', 'ref', 'commit_sha', 'repository_id', 'reason', 'workflow_id as workflowId', sql<string | null>`plan->'furrow'->>'event'`.as('event')])
    .where('id', '=', runId)
    .executeTakeFirst();
  if (!run) return; // deleted meanwhile
  const { branch } = branchAndTag(run.ref);
  const depth = (run.reason.type === 'workflow' && typeof run.reason.depth === 'number' ? run.reason.depth : 0) + 1;
  let passing: unknown;
  for (const chain of await chainsAfter(db, run.workflowId)) {
    if (chain.statuses.length > 0 && !chain.statuses.includes(run.status)) continue;
    if (chain.branches.length > 0 && (branch === null || !matchesRefPatterns(chain.branches, branch))) continue;
    if (depth > MAX_CHAIN_DEPTH) {
      await recordChainFire(db, chain, run.id, { code: 'chain_too_deep', error: `not started: it would be the ${depth}th run of a chain of chained runs, and a chain stops after ${MAX_CHAIN_DEPTH} (a loop?)` });
      continue;
    }
    // A pull request's code (perhaps a stranger's) is never what a chain runs: it runs its own
    // default, as GitHub's workflow_run does, with the secrets a pull request's run goes without.
    const sameCode = chain.repositoryId !== null && chain.repositoryId === run.repository_id && run.commit_sha !== null && run.event !== 'pull_request';
    try {
      const started = await startRun(deps, {
        workflowId: chain.workflowId,
        target: sameCode ? { ref: run.ref ?? undefined, commit: run.commit_sha!, event: 'workflow_run' } : { event: 'workflow_run' },
        parameters: {},
        reason: { type: 'workflow', triggerId: chain.id, upstreamRunId: run.id, upstreamWorkflowId: run.workflowId, upstreamStatus: run.status, depth },
        actorUserId: null,
        triggerKey: `workflow:${chain.id}:${run.id}`,
      });
      await recordChainFire(db, chain, run.id, { runId: started.id });
    } catch (err) {
      if (mayStartLater(err)) {
        passing ??= err; // the other chains go first; the task is tried again for this one
        continue;
      }
      const message = err instanceof Error ? err.message : String(err);
      await recordChainFire(db, chain, run.id, { code: err instanceof AppError ? err.code : 'error', error: `the run after run ${run.id} did not start: ${message}` });
    }
  }
  if (passing) throw passing;
}
