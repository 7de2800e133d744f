import type { ExecutorSettings } from '../../config/load-config.js';
import { BwrapExecutor } from './bwrap-executor.js';
import type { Executor } from './executor.js';
import { PodmanExecutor } from './podman-executor.js';
import { ShellExecutor } from './shell-executor.js';
import { SshExecutor } from './ssh-executor.js';

/** The executor a runner uses, by the name of FURROW_RUNNER_EXECUTOR. */
export function createExecutor(settings: ExecutorSettings): Executor {
  switch (settings.kind) {
    case 'shell':
      return new ShellExecutor(settings);
    case 'bwrap':
      return new BwrapExecutor(settings);
    case 'podman':
      return new PodmanExecutor(settings);
    case 'ssh':
      return new SshExecutor(settings);
    default:
      throw new Error(`executor ${settings.kind} is not available in this build`);
  }
}
