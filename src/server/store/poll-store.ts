import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import type { RefChange } from '../../domain/forge-event.js';
import { inTransaction } from '../../db/transaction.js';
import { recordActivity } from './activity-store.js';
import type { DeliveryOutcome } from './delivery-store.js';
import { msUntil } from './ms-until.js';
import type { RepositoryRow } from './repository-store.js';

/** A repository is polled when polling is on and something would act on its ref changes. */
const pollable = sql<boolean>`r.polling AND EXISTS (SELECT 1 FROM workflows w WHERE w.repository_id = r.id
  AND (w.definition IS NOT NULL OR w.path IS NOT NULL OR EXISTS (SELECT 1 FROM triggers t WHERE t.workflow_id = w.id AND t.kind = 'git' AND t.enabled)))`;

/** A repository taken for a poll, with what its last poll saw. */
export interface ClaimedPoll {
  repo: RepositoryRow;
  organizationId: string;
  /** Whether it was never polled: its first poll only learns the refs. */
  first: boolean;
  failures: number;
}

/**
 * Takes up to `limit` repositories whose poll is due (all pollable ones when `all`, for
 * `furrow preflight --once`), each for `holdSeconds`: no other instance polls it meanwhile.
 */
export async function claimPolls(db: Db, limit: number, holdSeconds: number, all = false): Promise<ClaimedPoll[]> {
  const { rows } = await sql<{ id: string; organization_id: string; first: boolean; failures: number }>`
    UPDATE repositories r SET poll_claimed_until = now() + make_interval(secs => ${holdSeconds})
    FROM (SELECT r.id FROM repositories r WHERE ${pollable} AND (r.poll_claimed_until IS NULL OR r.poll_claimed_until <= now())
            AND (${all} OR r.poll_next_at IS NULL OR r.poll_next_at <= now())
          ORDER BY r.poll_next_at NULLS FIRST LIMIT ${limit} FOR UPDATE SKIP LOCKED) due, projects p
    WHERE r.id = due.id AND p.id = r.project_id
    RETURNING r.id, p.organization_id, r.polled_at IS NULL AS first, r.poll_failures AS failures`.execute(db);
  if (rows.length === 0) return [];
  const repos = await db.selectFrom('repositories').selectAll().where('id', 'in', rows.map((r) => r.id)).execute();
  return rows.flatMap((r) => {
    const repo = repos.find((x) => x.id === r.id);
    return repo ? [{ repo, organizationId: r.organization_id, first: r.first, failures: r.failures }] : [];
  });
}

/** What the last poll of a repository saw: ref → commit. */
export async function polledRefs(db: Db, repositoryId: string): Promise<Map<string, string>> {
  const rows = await db.selectFrom('repository_refs').select(['ref', 'commit_sha']).where('repository_id', '=', repositoryId).execute();
  return new Map(rows.map((r) => [r.ref, r.commit_sha]));
}

/**
 * Records a poll that went through: the refs it saw (the changes acted on applied to the stored
 * ones), an activity per change with the runs it started, when to poll next, and the error of a
 * change that could not be acted on (counted as a failure, for the backoff). Nothing is recorded
 * for a repository whose URL changed while it was polled (its refs are another repository's).
 */
export function finishPoll(db: Db, p: ClaimedPoll, changes: { change: RefChange; outcome: DeliveryOutcome }[], nextSeconds: number, error: string | null = null): Promise<void> {
  return inTransaction(db, async (tx) => {
    const current = await tx.selectFrom('repositories').select('url').where('id', '=', p.repo.id).forUpdate().executeTakeFirst();
    if (!current) return;
    const same = current.url === p.repo.url;
    await tx
      .updateTable('repositories')
      .set({
        poll_claimed_until: null,
        poll_next_at: sql`now() + make_interval(secs => ${nextSeconds})`,
        ...(same ? { polled_at: sql`now()`, poll_failures: error ? p.failures + 1 : 0, poll_error: error } : {}),
      })
      .where('id', '=', p.repo.id)
      .execute();
    if (!same) return;
    const gone = changes.filter((c) => c.change.type === 'removed').map((c) => c.change.ref);
    if (gone.length > 0) await tx.deleteFrom('repository_refs').where('repository_id', '=', p.repo.id).where('ref', 'in', gone).execute();
    const seen = changes.filter((c) => c.change.after !== null).map((c) => ({ repository_id: p.repo.id, ref: c.change.ref, commit_sha: c.change.after! }));
    for (let i = 0; i < seen.length; i += 1000) {
      await tx.insertInto('repository_refs').values(seen.slice(i, i + 1000)).onConflict((oc) => oc.columns(['repository_id', 'ref']).doUpdateSet({ commit_sha: (eb) => eb.ref('excluded.commit_sha') })).execute();
    }
    if (p.first) return; // the first poll learns the refs: they are no changes
    for (const { change, outcome } of changes) {
      await recordActivity(tx, {
        type: `repository.ref-${change.type}`,
        organizationId: p.organizationId,
        projectId: p.repo.project_id,
        actorUserId: null,
        subjectType: 'repository',
        subjectId: p.repo.id,
        payload: { name: p.repo.name, ref: change.ref, before: change.before, after: change.after, runs: outcome.runs.map((r) => ({ runId: r.runId, workflowId: r.workflowId, number: r.number })) },
      });
    }
  });
}

/** Records a poll that failed: the error shows on the repository, and the next poll backs off. */
export async function failPoll(db: Db, p: ClaimedPoll, error: string, nextSeconds: number): Promise<void> {
  await db
    .updateTable('repositories')
    .set({ poll_claimed_until: null, poll_failures: p.failures + 1, poll_error: error, poll_next_at: sql`now() + make_interval(secs => ${nextSeconds})` })
    .where('id', '=', p.repo.id)
    .execute();
}

/** Milliseconds until a repository's poll is due (0: now), or null when none is pollable. */
export async function msUntilNextPoll(db: Db): Promise<number | null> {
  const { rows } = await sql<{ ms: number | null }>`
    SELECT ${msUntil(sql`min(greatest(coalesce(r.poll_next_at, now()), coalesce(r.poll_claimed_until, now())))`)} AS ms
    FROM repositories r WHERE ${pollable}`.execute(db);
  return rows[0]?.ms ?? null;
}
