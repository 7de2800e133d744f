import type { Retryable } from '../../domain/run-state.js';
import type { CompiledWorkflow } from '../../pipeline/workflow-model.js';

export interface ScriptWorkflow {
  name: string;
  script: string;
  image: string | null;
  /** Both null: the default policy. */
  retry_count: number | null;
  retry_on: string[] | null;
  /** Set when the workflow is attached to a repository: the run's commit is checked out first. */
  repository_id: string | null;
}

/** A script workflow as the one-job plan it runs as, so every run takes the same path. */
export function scriptPlan(wf: ScriptWorkflow): CompiledWorkflow {
  return {
    name: wf.name,
    on: { push: null, pullRequest: null, delete: null, schedule: [], webhook: null, manual: { inputs: {} }, workflowRun: null },
    env: {},
    concurrency: null,
    jobs: [
      {
        id: 'script',
        key: 'script',
        name: wf.name,
        needs: [],
        runsOn: [],
        if: null,
        matrix: null,
        env: {},
        steps: [{ name: 'script', run: wf.script, env: {}, timeoutSeconds: null, continueOnError: false, if: null }],
        timeoutSeconds: null,
        continueOnError: false,
        retry: wf.retry_count === null ? null : { count: wf.retry_count, on: (wf.retry_on ?? []) as Retryable[] },
        image: wf.image,
        environment: null,
        concurrency: null,
        maxParallel: null,
        failFast: false,
        checkout: { enabled: wf.repository_id !== null, depth: 1 },
        upload: [],
        download: [],
      },
    ],
  };
}
