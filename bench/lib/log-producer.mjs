/**
 * A fast log producer: a job running `yes | head -c 200000000` (about 2 GB/s into /dev/null)
 * against the same script writing into a file on the filesystem of the data dir, which is the
 * least any stored log costs. The server's memory growth is sampled as for the 200 MiB log.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { floorLog, furrowLog, FLOOR_LOG_REPEATS, repeat, timedScript } from './large-log.mjs';
import { median } from './stats.mjs';

export const PRODUCER_BYTES = 200_000_000;
// `yes` ends on SIGPIPE when head has its bytes; `|| true` keeps that from failing the step,
// which runs under `bash -e -o pipefail`. The bytes that flow are those of the bare pipeline.
export const PRODUCER_COMMAND = `{ yes || true; } | head -c ${PRODUCER_BYTES}`;

export const producerScript = (timesFile) => timedScript(PRODUCER_COMMAND, timesFile);

/**
 * FLOOR_LOG_REPEATS floor runs into `outDir`/producer.out (removed after each), as many into
 * /dev/null for reference, then `runs` jobs
 * through Furrow. `probe` is { file, timesFile, workflowId } for producerScript(timesFile); `server`
 * is { pid }. Medians are taken, the worst RSS growth.
 */
export async function measureLogProducer(api, probe, runs, server, outDir, log) {
  const outFile = path.join(outDir, 'producer.out');
  log(`log producer floor: ${FLOOR_LOG_REPEATS} × \`${PRODUCER_COMMAND}\` > ${outFile}, then ${FLOOR_LOG_REPEATS} × > /dev/null`);
  const floors = await repeat(FLOOR_LOG_REPEATS, async () => {
    try {
      return await floorLog(probe, { outFile });
    } finally {
      await rm(outFile, { force: true });
    }
  });
  const devNull = await repeat(FLOOR_LOG_REPEATS, () => floorLog(probe));
  const jobs = await repeat(runs, (i) => {
    log(`log producer through Furrow: run ${i + 1} of ${runs}`);
    return furrowLog(api, probe, server);
  });
  return {
    floorScriptMs: median(floors.map((f) => f.scriptMs)),
    floorWallMs: median(floors.map((f) => f.wallMs)),
    devNullScriptMs: median(devNull.map((f) => f.scriptMs)),
    scriptMs: median(jobs.map((r) => r.scriptMs)),
    jobMs: median(jobs.map((r) => r.jobMs)),
    rssGrowth: Math.max(...jobs.map((r) => r.rssGrowth)),
    sizesOk: jobs.every((r) => r.outputBytes === PRODUCER_BYTES),
    outputBytes: jobs[jobs.length - 1].outputBytes,
    runs: jobs,
  };
}
