import type { WorkflowTriggers } from './workflow-model.js';

const list = (xs: string[]) => xs.join(', ');

/** The filters of a push or deletion in words: `branches main; tags v*`, or `every branch and tag`. */
function refFilters(parts: [string, string[]][]): string {
  const given = parts.filter(([, xs]) => xs.length > 0).map(([what, xs]) => `${what} ${list(xs)}`);
  return given.length > 0 ? given.join('; ') : 'every branch and tag';
}

/**
 * What starts a workflow, one line per trigger of its `on`, in words (for `furrow lint` and the
 * API): every trigger listed acts.
 */
export function describeTriggers(on: WorkflowTriggers): string[] {
  const lines: string[] = [];
  if (on.push) {
    const p = on.push;
    lines.push(`push (${refFilters([['branches', p.branches], ['branches-ignore', p.branchesIgnore], ['tags', p.tags], ['tags-ignore', p.tagsIgnore], ['paths', p.paths], ['paths-ignore', p.pathsIgnore]])})`);
  }
  if (on.pullRequest) {
    const pr = on.pullRequest;
    const into = pr.branches.length > 0 ? ` into ${list(pr.branches)}` : '';
    lines.push(`pull_request (${list(pr.types)}${into}${pr.branchesIgnore.length > 0 ? `, not into ${list(pr.branchesIgnore)}` : ''})`);
  }
  if (on.delete) lines.push(`delete (${refFilters([['branches', on.delete.branches], ['tags', on.delete.tags]])})`);
  for (const s of on.schedule) lines.push(`schedule ${s.cron} (${s.timezone ?? 'UTC'})`);
  if (on.webhook) lines.push(`webhook (${on.webhook.events.length > 0 ? list(on.webhook.events) : 'every event but pushes and pull requests'})`);
  if (on.workflowRun) {
    const w = on.workflowRun;
    lines.push(`workflow_run after ${list(w.workflows)} (${w.statuses.length > 0 ? list(w.statuses) : 'any end'}${w.branches.length > 0 ? ` on ${list(w.branches)}` : ''})`);
  }
  if (on.manual) {
    const inputs = Object.keys(on.manual.inputs);
    lines.push(`manual${inputs.length > 0 ? ` (inputs ${list(inputs)})` : ''}`);
  }
  return lines;
}
