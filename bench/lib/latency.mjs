/**
 * Trigger-to-start latency: from just before the trigger to the script's first line, which stamps
 * $EPOCHREALTIME into a file. Floor: the same script file spawned by bash straight from Node.
 */
import { spawn } from 'node:child_process';
import { readFileSync, watch } from 'node:fs';
import { readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { describeRun, waitForRun } from './api-client.mjs';
import { BenchError } from './bench-error.mjs';
import { closed, shq } from './child-process.mjs';
import { epochRealtimeMs, now } from './clock.mjs';
import { summary } from './stats.mjs';

/** The probe script: its first line is a bash builtin (no fork), so the stamp is the earliest possible. */
export const latencyScript = (stampFile) => `printf '%s\\n' "$EPOCHREALTIME" > ${shq(stampFile)}\necho "trigger-to-start probe"\n`;

/**
 * Warm-up then measured runs, floor first, then through Furrow. `probe` is { file, stampFile,
 * workflowId } for latencyScript(stampFile). Resolves with { floor, furrow } summary() stats.
 */
export async function measureLatency(api, probe, { runs, warmup }, log) {
  log(`trigger-to-start floor: ${warmup} warm-up + ${runs} spawns of bash`);
  await floorLatency(probe, warmup);
  const floor = summary(await floorLatency(probe, runs));
  log(`trigger-to-start through Furrow: ${warmup} warm-up + ${runs} runs, one at a time`);
  await furrowLatency(api, probe, warmup);
  const furrow = summary(await furrowLatency(api, probe, runs));
  return { floor, furrow };
}

/** Floor: the same script file spawned from Node; time from just before spawn() to its first line. */
async function floorLatency({ file, stampFile }, count) {
  const samples = [];
  for (let i = 0; i < count; i++) {
    await unlink(stampFile).catch(() => undefined);
    const t0 = now();
    const child = spawn('bash', [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.resume();
    child.stderr.resume();
    const code = await closed(child);
    if (code !== 0) throw new BenchError(`the floor latency script exited with ${code}`);
    samples.push(epochRealtimeMs(await readFile(stampFile, 'utf8')) - t0);
  }
  return samples;
}

/** Furrow: from just before POST /workflows/:id/runs to the script's first line; runs one at a time. */
async function furrowLatency(api, { workflowId, stampFile }, count) {
  const samples = [];
  for (let i = 0; i < count; i++) {
    await unlink(stampFile).catch(() => undefined);
    const t0 = now();
    const run = await api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
    let text;
    try {
      text = await waitForLine(stampFile, 30_000);
    } catch (err) {
      throw new BenchError(`${err.message}; ${await describeRun(api, run.id)}`);
    }
    samples.push(epochRealtimeMs(text) - t0);
    const done = await waitForRun(api, run.id, { timeoutMs: 30_000, intervalMs: 5 });
    if (done.status !== 'succeeded') throw new BenchError(`latency run ${run.id} ended ${done.status}; ${await describeRun(api, run.id)}`);
  }
  return samples;
}

/**
 * Resolves with the content of `file` once it holds a complete line. Watches the directory
 * (inotify) instead of polling the server, so waiting does not load the process being measured.
 */
function waitForLine(file, timeoutMs) {
  return new Promise((resolve, reject) => {
    let finished = false;
    const finish = (err, text) => {
      if (finished) return;
      finished = true;
      watcher.close();
      clearInterval(poll);
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(text);
    };
    const check = () => {
      let text;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        return;
      }
      if (text.endsWith('\n')) finish(undefined, text);
    };
    const watcher = watch(path.dirname(file), check);
    const poll = setInterval(check, 25);
    const timer = setTimeout(() => finish(new BenchError(`${path.basename(file)} was not written within ${timeoutMs / 1000} s`)), timeoutMs);
    check();
  });
}
