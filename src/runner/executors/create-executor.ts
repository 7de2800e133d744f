import type { ExecutorSettings } from '../../config/load-config.js';
import type { Executor } from './executor.js';
import { ShellExecutor } from './shell-executor.js';

/** The executor a runner uses, by the name of FURROW_RUNNER_EXECUTOR. */
export function createExecutor(settings: ExecutorSettings): Executor {
  switch (settings.kind) {
    case 'shell':
      return new ShellExecutor(settings);
    default:
      throw new Error(`executor ${settings.kind} is not available in this build`);
  }
}
