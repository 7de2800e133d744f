import type { CompiledWorkflow, ConditionContext } from '../../pipeline/workflow-model.js';

/** The stored plan: the compiled workflow and what its conditions read, for later decisions. */
export interface RunPlan {
  workflow: CompiledWorkflow;
  furrow: ConditionContext['furrow'];
}
