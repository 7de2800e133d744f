/**
 * A `true` step: how long the step of a one-step `true` job lasts (its finishedAt − startedAt
 * from the API) against spawning `bash -c true` from Node, from just before spawn() to its exit.
 */
import { spawn } from 'node:child_process';
import { describeRun, waitForRun } from './api-client.mjs';
import { BenchError } from './bench-error.mjs';
import { closed } from './child-process.mjs';
import { now } from './clock.mjs';
import { summary } from './stats.mjs';

/** Floor first, then `count` runs of the `true` workflow, one at a time. Resolves with { floor, furrow } stats. */
export async function measureTrueStep(api, { workflowId }, count, log) {
  log(`true step floor: ${count} × spawn('bash', ['-c', 'true'])`);
  const floor = [];
  for (let i = 0; i < count; i++) {
    const t0 = now();
    const code = await closed(spawn('bash', ['-c', 'true'], { stdio: 'ignore' }));
    if (code !== 0) throw new BenchError(`bash -c true exited with ${code}`);
    floor.push(now() - t0);
  }
  log(`true step through Furrow: ${count} runs, one at a time`);
  const furrow = [];
  for (let i = 0; i < count; i++) {
    const run = await api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
    const done = await waitForRun(api, run.id, { timeoutMs: 30_000, intervalMs: 5 });
    if (done.status !== 'succeeded') throw new BenchError(`true run ${run.id} ended ${done.status}; ${await describeRun(api, run.id)}`);
    const step = (await api('GET', `/api/v1/runs/${run.id}/jobs`)).items[0]?.steps?.[0];
    if (!step?.startedAt || !step.finishedAt) throw new BenchError(`true run ${run.id} has no timed step; ${await describeRun(api, run.id)}`);
    furrow.push(Date.parse(step.finishedAt) - Date.parse(step.startedAt));
  }
  return { floor: summary(floor), furrow: summary(furrow) };
}
