import type { Db } from '../../db/database.js';
import { compileWorkflow } from '../../pipeline/compile-workflow.js';
import type { CompiledWorkflow, WorkflowProblem } from '../../pipeline/workflow-model.js';
import { AppError, notFound } from '../app-error.js';
import { RefNotFoundError, resolveRefName } from '../git/resolve-ref.js';
import { CommitNotFoundError, readWorkflowFile } from '../git/read-workflow-files.js';
import { GitError } from '../git/run-git.js';
import { repositoryRemote } from '../keys/repository-remote.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { RunOrigin } from '../runs/queue-run.js';
import { scriptPlan } from '../store/script-plan.js';

export interface PlanOptions {
  db: Db;
  secretBox: SecretBox;
  dataDir: string;
  gitTimeoutSeconds: number;
}

/** Where to run: a branch or tag (default: the repository's default branch), or one commit. */
export interface RunTarget {
  ref?: string | undefined;
  commit?: string | undefined;
  event: string;
}

/** A compiled workflow's problems (sorted by position) as the API's 422 `workflow_invalid`. */
function workflowInvalid(problems: WorkflowProblem[]): AppError {
  const first = problems[0]!;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
  return new AppError('workflow_invalid', `${first.file}:${first.line}:${first.column}: ${first.message}${more}`, problems);
}

/** Compiles YAML, or answers `workflow_invalid` with every problem and its position. */
export function compileOrThrow(text: string, file: string): CompiledWorkflow {
  const { workflow, problems } = compileWorkflow(text, file);
  if (!workflow) throw workflowInvalid(problems);
  return workflow;
}

/** A ref named along with a commit is taken as a branch unless it says otherwise. */
function qualify(ref: string): string {
  return ref.startsWith('refs/') ? ref : `refs/heads/${ref}`;
}

/**
 * What a run of a workflow executes and where its code comes from: a script, a YAML definition,
 * or a file read from the repository at the run's commit (resolved from the branch first).
 */
export async function planWorkflowRun(opts: PlanOptions, workflowId: string, target: RunTarget): Promise<{ plan: CompiledWorkflow; origin: RunOrigin }> {
  const { db } = opts;
  const wf = await db
    .selectFrom('workflows')
    .select(['id', 'name', 'script', 'definition', 'path', 'repository_id', 'image', 'retry_count', 'retry_on'])
    .where('id', '=', workflowId)
    .executeTakeFirst();
  if (!wf) throw notFound('Workflow');
  const repo = wf.repository_id
    ? await db.selectFrom('repositories').select(['id', 'url', 'default_branch', 'private_key', 'known_hosts']).where('id', '=', wf.repository_id).executeTakeFirst()
    : undefined;
  // A script or a definition is stored with the workflow; only a file is read at the commit.
  const stored = () => (wf.definition !== null ? compileOrThrow(wf.definition, `${wf.name}.yml`) : scriptPlan({ ...wf, script: wf.script ?? '' }));
  if (!repo) {
    if (target.ref || target.commit) throw new AppError('validation_failed', 'This workflow has no repository, so it runs at no branch or commit.', [{ field: target.ref ? 'ref' : 'commit', message: 'the workflow has no repository' }]);
    return { plan: stored(), origin: { event: target.event, ref: null, commit: null, repository: null } };
  }
  const remote = repositoryRemote(opts.secretBox, repo);
  let ref: string | null = target.ref && target.commit ? qualify(target.ref) : null;
  let commit: string;
  let text: string | undefined;
  try {
    if (target.commit) commit = target.commit;
    else ({ ref, commit } = await resolveRefName(remote, target.ref ?? repo.default_branch, opts.gitTimeoutSeconds));
    if (ref === commit) ref = null; // a sha was given: the run is at no branch or tag
    text = wf.path !== null ? await readWorkflowFile(remote, commit, wf.path, { dataDir: opts.dataDir, timeoutSeconds: opts.gitTimeoutSeconds }) : undefined;
  } catch (err) {
    if (err instanceof RefNotFoundError) throw new AppError('ref_not_found', err.message);
    if (err instanceof CommitNotFoundError) throw new AppError('commit_not_found', err.message);
    if (err instanceof GitError) throw new AppError('repository_unreachable', `git could not read the repository: ${err.message}`);
    throw err;
  }
  if (wf.path !== null && text === undefined) {
    throw new AppError('workflow_invalid', `The commit ${commit.slice(0, 12)} has no file ${wf.path}.`, [{ file: wf.path, line: 1, column: 1, message: 'no such file at this commit' }]);
  }
  const plan = wf.path !== null ? compileOrThrow(text!, wf.path) : stored();
  return { plan, origin: { event: target.event, ref, commit, repository: { id: repo.id, url: repo.url } } };
}
