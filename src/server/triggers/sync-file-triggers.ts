import { compileWorkflow } from '../../pipeline/compile-workflow.js';
import { describeTriggers } from '../../pipeline/describe-triggers.js';
import { inTransaction } from '../../db/transaction.js';
import { AppError } from '../app-error.js';
import { readWorkflowFile } from '../git/read-workflow-files.js';
import { RefNotFoundError, resolveRefName } from '../git/resolve-ref.js';
import { GitError } from '../git/run-git.js';
import { repositoryRemote } from '../keys/repository-remote.js';
import type { RunStartDeps } from '../runs/start-run.js';
import type { RepositoryRow } from '../store/repository-store.js';
import { syncFileTriggers } from '../store/trigger-store.js';
import { fileTriggersOf } from '../store/workflow-store.js';

/**
 * Reads the `on` of the file workflows of a repository (or the one `workflowId`) at `commit` of
 * its default branch, as GitHub reads schedules there: the schedules and chains it gives become
 * the workflow's file triggers, and what it says is kept to show (`fileOn`). A file gone from the
 * branch gives no triggers; a file that does not compile leaves them as they were, with its
 * problem shown. Throws when git cannot read the repository, for the caller to try again.
 */
export async function syncFileWorkflows(deps: RunStartDeps, repo: RepositoryRow, commit: string, workflowId?: string): Promise<void> {
  const { db } = deps.database;
  let q = db.selectFrom('workflows').select(['id', 'path']).where('repository_id', '=', repo.id).where('path', 'is not', null);
  if (workflowId) q = q.where('id', '=', workflowId);
  const remote = repositoryRemote(deps.secretBox, repo);
  for (const wf of await q.execute()) {
    const text = await readWorkflowFile(remote, commit, wf.path!, { dataDir: deps.config.dataDir, timeoutSeconds: deps.config.gitTimeoutSeconds }).catch((err: unknown) => {
      if (err instanceof GitError) throw new AppError('repository_unreachable', `git could not read ${repo.url}: ${err.message}`);
      throw err;
    });
    const { workflow, problems } = text === undefined ? { workflow: undefined, problems: [] } : compileWorkflow(text, wf.path!);
    const problem = text === undefined ? `the default branch has no file ${wf.path}` : workflow ? null : `${problems[0]!.line}:${problems[0]!.column}: ${problems[0]!.message}`;
    await inTransaction(db, async (tx) => {
      // Another path (or a deletion) since the read: the file read is no longer this workflow's.
      const still = await tx.selectFrom('workflows').select('id').where('id', '=', wf.id).where('path', '=', wf.path).forUpdate().executeTakeFirst();
      if (!still) return;
      if (workflow || text === undefined) await syncFileTriggers(tx, wf.id, fileTriggersOf(workflow?.on, new Date()));
      const fileOn = { commit, triggers: workflow ? describeTriggers(workflow.on) : null, problem };
      await tx.updateTable('workflows').set({ file_on: JSON.stringify(fileOn) }).where('id', '=', wf.id).execute();
    });
  }
}

/**
 * Syncs a repository's file workflows at `commit` when it is still the head of the default branch:
 * an old push delivered again, or a poll that looked before a newer push, brings back no older
 * schedules.
 */
export async function syncFileWorkflowsAtHead(deps: RunStartDeps, repo: RepositoryRow, commit: string): Promise<void> {
  const head = await resolveRefName(repositoryRemote(deps.secretBox, repo), repo.default_branch, deps.config.gitTimeoutSeconds).catch((err: unknown) => {
    if (err instanceof GitError) throw new AppError('repository_unreachable', `git could not read ${repo.url}: ${err.message}`);
    throw err;
  });
  if (head.commit === commit) await syncFileWorkflows(deps, repo, commit);
}

/** The `sync-file-triggers` task: one file workflow, at the head of its repository's default branch. */
export async function syncFileWorkflowTask(deps: RunStartDeps, workflowId: string): Promise<void> {
  const { db } = deps.database;
  const wf = await db.selectFrom('workflows').select('repository_id').where('id', '=', workflowId).where('path', 'is not', null).executeTakeFirst();
  const repo = wf?.repository_id ? await db.selectFrom('repositories').selectAll().where('id', '=', wf.repository_id).executeTakeFirst() : undefined;
  if (!repo) return; // gone, or no longer a file
  try {
    const { commit } = await resolveRefName(repositoryRemote(deps.secretBox, repo), repo.default_branch, deps.config.gitTimeoutSeconds);
    await syncFileWorkflows(deps, repo, commit, workflowId);
  } catch (err) {
    if (err instanceof RefNotFoundError) return; // an empty repository: its first push syncs it
    throw err; // graphile-worker tries again later
  }
}
