import type { Db } from '../../db/database.js';
import { hashSecret, newSecret } from './account-store.js';

/** The job a job token authenticated, and where it lives. */
export interface JobIdentity {
  jobId: string;
  runId: string;
  projectId: string;
  organizationId: string;
}

/** A token for one job's artifact routes; only its hash is stored (`jobs.job_token_hash`). */
export function newJobToken(): { token: string; hash: Buffer } {
  const { secret, hash } = newSecret('fjt');
  return { token: secret, hash };
}

/** The job holding `token`, while that job runs; undefined for any other token. */
export function jobForToken(db: Db, token: string): Promise<JobIdentity | undefined> {
  return db
    .selectFrom('jobs')
    .innerJoin('runs', 'runs.id', 'jobs.run_id')
    .select(['jobs.id as jobId', 'jobs.run_id as runId', 'runs.project_id as projectId', 'jobs.organization_id as organizationId'])
    .where('jobs.job_token_hash', '=', hashSecret(token))
    .where('jobs.status', '=', 'running')
    .executeTakeFirst();
}
