import type { Task } from 'graphile-worker';
import { sql } from 'kysely';
import { statusRequest, worthRetrying, type StatusForgeName } from '../../domain/commit-status.js';
import type { Resources } from '../resources.js';
import { STATUS_ATTEMPTS } from '../store/commit-status-store.js';
import { payloadId } from './tasks.js';

/** The purpose a repository's forge token is sealed under. */
export const forgeTokenPurpose = (repositoryId: string) => `forge-token:${repositoryId}`;

/** How long the forge may take to answer one status. */
const SEND_TIMEOUT_MS = 10_000;

type SendDeps = Pick<Resources, 'database' | 'secretBox' | 'config'>;

/** The URL a status links to: the run, on the address people reach Furrow at. */
function runUrl(config: SendDeps['config'], runId: string): string {
  const origin = config.publicOrigin ?? `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`;
  return `${origin}/api/v1/runs/${runId}`;
}

/**
 * The `send-commit-statuses` task: sends the queued statuses of a run's commit and workflow (its
 * runs' and re-runs' alike) to its forge, oldest first. An
 * answer that may change (a server error, a rate limit, no answer) stops the round: the task
 * throws and graphile-worker runs it again later, from that status, so that a run's statuses
 * arrive in order; after STATUS_ATTEMPTS tries, or on an answer that will not change (a wrong
 * token, an unknown repository), a status is marked failed, which shows on the run and never
 * fails it, and the next one goes.
 */
export function sendCommitStatusesTask(deps: SendDeps): Task {
  const { db } = deps.database;
  return async (payload) => {
    const run = await db.selectFrom('runs').select(['repository_id', 'commit_sha', 'workflow_id']).where('id', '=', payloadId(payload, 'runId')).executeTakeFirst();
    if (!run?.repository_id || !run.commit_sha) return; // gone
    const queued = await db
      .selectFrom('commit_statuses as s')
      .innerJoin('repositories as r', 'r.id', 's.repository_id')
      .innerJoin('runs', 'runs.id', 's.run_id')
      .innerJoin('workflows as w', 'w.id', 'runs.workflow_id')
      .select(['s.id', 's.state', 's.description', 's.commit_sha', 's.attempts', 's.run_id', 'r.id as repositoryId', 'r.status_forge', 'r.status_api_url', 'r.status_repository', 'r.status_token', 'w.name as workflow'])
      .where('s.repository_id', '=', run.repository_id)
      .where('s.commit_sha', '=', run.commit_sha)
      .where('runs.workflow_id', '=', run.workflow_id)
      .where('s.status', '=', 'queued')
      .orderBy('s.created_at')
      .orderBy('s.id')
      .execute();
    for (const s of queued) {
      const record = (status: 'sent' | 'failed', error: string | null) =>
        db
          .updateTable('commit_statuses')
          .set({ status, last_error: error, attempts: sql`attempts + 1`, sent_at: status === 'sent' ? sql`now()` : null })
          .where('id', '=', s.id)
          .execute();
      // No longer reported by its repository: it goes nowhere.
      if (!s.status_forge || !s.status_token || !s.status_repository || !s.status_api_url) {
        await record('failed', 'the repository no longer reports commit statuses');
        continue;
      }
      let token: string;
      try {
        token = deps.secretBox.openText(s.status_token, forgeTokenPurpose(s.repositoryId));
      } catch {
        await record('failed', 'the forge token cannot be opened with this instance’s secret key: set it again');
        continue;
      }
      const req = statusRequest(
        { forge: s.status_forge as StatusForgeName, apiUrl: s.status_api_url, repository: s.status_repository, token },
        { sha: s.commit_sha, state: s.state, context: `furrow/${s.workflow}`, description: s.description, targetUrl: runUrl(deps.config, s.run_id) },
      );
      let httpStatus: number | null = null;
      let error: string;
      try {
        // A redirect is not followed: the token would go where the forge's answer points.
        const res = await fetch(req.url, { method: 'POST', headers: req.headers, body: req.body, redirect: 'manual', signal: AbortSignal.timeout(SEND_TIMEOUT_MS) });
        if (res.ok) {
          await record('sent', null);
          continue;
        }
        httpStatus = res.status;
        // Only the status code is kept: what the address answers is not for the run's readers.
        await res.body?.cancel().catch(() => undefined);
        error = `the forge answered ${res.status}`;
      } catch (err) {
        error = `the forge could not be reached: ${(err as Error).message}`;
      }
      if (!worthRetrying(httpStatus) || s.attempts + 1 >= STATUS_ATTEMPTS) {
        await record('failed', error);
        continue;
      }
      await db.updateTable('commit_statuses').set({ attempts: sql`attempts + 1`, last_error: error }).where('id', '=', s.id).execute();
      throw new Error(error); // the later statuses wait for this one
    }
  };
}
