import type { ExecutorKind } from '../../src/config/load-config.js';
import { loadConfig } from '../../src/config/load-config.js';
import { createExecutor } from '../../src/runner/executors/create-executor.js';

/**
 * Whether this host can run `kind` jobs. Where it cannot, the tests that need it are skipped with
 * the probe's reason printed; on CI (CI=true), whose host installs everything, that is a failure.
 */
export async function executorAvailable(kind: ExecutorKind, env: Record<string, string> = {}): Promise<boolean> {
  const config = loadConfig({ FURROW_RUNNER_EXECUTOR: kind, ...env });
  const probe = await createExecutor(config.executor).probe();
  if (probe.ok) return true;
  if (process.env.CI) throw new Error(`executor ${kind} cannot run on this CI host: ${probe.detail}`);
  console.warn(`skipping ${kind} executor tests: ${probe.detail}`);
  return false;
}
