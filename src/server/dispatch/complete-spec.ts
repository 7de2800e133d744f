import type { Db } from '../../db/database.js';
import type { JobSpec } from '../../protocol/messages.js';
import { repositoryRemote } from '../keys/repository-remote.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { ClaimedJob } from '../runs/claim-job.js';
import { resolveJobSecrets } from '../store/secret-store.js';

/**
 * The spec a runner receives for a job it claimed: the stored spec with what is never stored in
 * it added for this job alone: its secrets, the repository's deploy key and pinned host keys, and
 * the job's artifact token.
 */
export async function completeSpec(db: Db, box: SecretBox, claimed: ClaimedJob, token: string): Promise<JobSpec> {
  const { spec } = claimed;
  const [secrets, repository] = await Promise.all([
    // A pull request's code (perhaps a stranger's) runs without the secrets unless its run was
    // queued with them (never a fork's). FURROW_EVENT is the server's: the context variables are
    // set over the workflow's own.
    spec.env.FURROW_EVENT === 'pull_request' && !(await runGetsSecrets(db, spec.runId)) ? [] : resolveJobSecrets(db, box, spec.projectId, claimed.environmentId),
    spec.checkout
      ? db.selectFrom('repositories').select(['id', 'url', 'private_key', 'known_hosts']).where('id', '=', spec.checkout.repositoryId).executeTakeFirst()
      : undefined,
  ]);
  // A repository deleted since the run was queued: the checkout goes ahead without a key.
  const remote = repository && repositoryRemote(box, repository);
  const checkout = spec.checkout && { ...spec.checkout, privateKey: remote?.privateKey ?? null, knownHosts: remote?.knownHosts ?? null };
  return { ...spec, secrets, checkout, artifacts: { ...spec.artifacts, token } };
}

async function runGetsSecrets(db: Db, runId: string): Promise<boolean> {
  const r = await db.selectFrom('runs').select('pull_request_secrets').where('id', '=', runId).executeTakeFirst();
  return r?.pull_request_secrets ?? false;
}

/** The secret values to mask in a job's log, for a job this server did not hand out itself. */
export async function jobSecretValues(db: Db, box: SecretBox, jobId: string): Promise<string[]> {
  const job = await db
    .selectFrom('jobs')
    .innerJoin('runs', 'runs.id', 'jobs.run_id')
    .select(['runs.project_id', 'jobs.environment_id'])
    .where('jobs.id', '=', jobId)
    .executeTakeFirst();
  if (!job) return [];
  return (await resolveJobSecrets(db, box, job.project_id, job.environment_id)).map((s) => s.value);
}
