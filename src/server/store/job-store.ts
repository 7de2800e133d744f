import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import type { RunStatus } from '../../db/schema.js';
import { sourcesOf } from '../../domain/run-state.js';

/** Extends the lease while the runner still holds the job; says whether cancel was requested. */
export async function extendLease(db: Db, jobId: string, runnerId: string, leaseSeconds: number): Promise<{ held: boolean; cancel: boolean }> {
  const row = await db
    .updateTable('jobs')
    .set({ lease_expires_at: sql`now() + make_interval(secs => ${leaseSeconds})` })
    .where('id', '=', jobId)
    .where('runner_id', '=', runnerId)
    .where('status', 'in', ['queued', 'running'])
    .returning('cancel_requested')
    .executeTakeFirst();
  return { held: !!row, cancel: row?.cancel_requested ?? true };
}

export async function setStepStatus(db: Db, jobId: string, stepId: string, status: RunStatus, exitCode: number | null | undefined): Promise<void> {
  await db
    .updateTable('steps')
    .set({
      status,
      ...(status === 'running' ? { started_at: sql`now()` } : { finished_at: sql`now()` }),
      ...(exitCode !== undefined ? { exit_code: exitCode } : {}),
    })
    .where('id', '=', stepId)
    .where('job_id', '=', jobId)
    .where('status', 'in', sourcesOf(status))
    .execute();
}
