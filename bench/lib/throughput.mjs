/**
 * Throughput: many runs of a `true` script posted by concurrent clients while the local runner
 * executes up to its capacity, against the same script spawned from Node as wide as that capacity.
 * Also the POST latency under that load and the database commits each run costs.
 */
import { spawn } from 'node:child_process';
import pg from 'pg';
import { BenchError } from './bench-error.mjs';
import { closed } from './child-process.mjs';
import { now, sleep } from './clock.mjs';
import { summary } from './stats.mjs';

export const TRUE_SCRIPT = 'true\n';
export const CLIENTS = 16;
/** The local runner's capacity during the bench (FURROW_LOCAL_RUNNER_CAPACITY) and the floor's width. */
export const CAPACITY = 8;
/**
 * A PostgreSQL backend that has just flushed its statistics holds new ones back for up to 10 s
 * while idle (PGSTAT_IDLE_INTERVAL), so the commit counter is read that long after the last run.
 */
export const STATS_SETTLE_MS = 11_000;
const POLL_MS = 200;

/**
 * Floor first, then `count` runs through Furrow. `probe` is { file, workflowId, projectId } for
 * TRUE_SCRIPT; `databaseUrl` reaches the server's database. Resolves with { floor, furrow }.
 */
export async function measureThroughput(api, probe, count, databaseUrl, log) {
  log(`throughput floor: ${count} × spawn('bash', [file]), ${CAPACITY} at a time`);
  const floor = await floorThroughput(probe.file, count);
  log(`throughput through Furrow: ${count} runs posted by ${CLIENTS} clients, local runner capacity ${CAPACITY}`);
  const furrow = await furrowThroughput(api, probe, count, databaseUrl, log);
  return { floor, furrow };
}

/** `count` spawns of the script, `CAPACITY` at a time; runs/s from the first spawn to the last exit. */
async function floorThroughput(file, count) {
  let next = 0;
  const t0 = now();
  const lane = async () => {
    while (next < count) {
      next += 1;
      const code = await closed(spawn('bash', [file], { stdio: 'ignore' }));
      if (code !== 0) throw new BenchError(`the floor throughput script exited with ${code}`);
    }
  };
  await Promise.all(Array.from({ length: CAPACITY }, lane));
  return { runsPerS: count / ((now() - t0) / 1000) };
}

async function furrowThroughput(api, { workflowId, projectId }, count, databaseUrl, log) {
  const commitsBefore = await xactCommit(databaseUrl);
  let requests = 0;
  const counted = (method, route, body) => {
    requests += 1;
    return api(method, route, body);
  };
  const ids = new Set();
  const postMs = [];
  let next = 0;
  const t0 = now();
  const client = async () => {
    while (next < count) {
      next += 1;
      const t = now();
      const run = await counted('POST', `/api/v1/workflows/${workflowId}/runs`, {});
      postMs.push(now() - t);
      ids.add(run.id);
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, client));
  const postedMs = now() - t0;

  const runsUrl = `/api/v1/projects/${projectId}/runs?workflowId=${workflowId}`;
  const deadline = Date.now() + 600_000;
  for (;;) {
    const [queued, running] = await Promise.all(['queued', 'running'].map((s) => counted('GET', `${runsUrl}&status=${s}&limit=1`)));
    if (queued.items.length === 0 && running.items.length === 0) break;
    if (Date.now() > deadline) throw new BenchError(`throughput runs still queued or running after ${(Date.now() - t0) / 1000} s`);
    await sleep(POLL_MS);
  }
  const runs = [];
  for (let cursor; ; ) {
    const page = await counted('GET', `${runsUrl}&limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    runs.push(...page.items.filter((r) => ids.has(r.id)));
    if (!page.nextCursor) break;
    cursor = page.nextCursor;
  }
  if (runs.length !== count) throw new BenchError(`${count} throughput runs were posted but ${runs.length} are listed`);
  const failed = runs.filter((r) => r.status !== 'succeeded');
  if (failed.length > 0) throw new BenchError(`${failed.length} throughput run(s) did not succeed, e.g. run ${failed[0].id}: ${failed[0].status}`);
  const lastEndMs = Math.max(...runs.map((r) => Date.parse(r.finishedAt)));

  log(`waiting ${STATS_SETTLE_MS / 1000} s for PostgreSQL's commit counter to settle`);
  await sleep(STATS_SETTLE_MS);
  const commits = (await xactCommit(databaseUrl)) - commitsBefore;
  return {
    runsPerS: count / ((lastEndMs - t0) / 1000),
    elapsedMs: lastEndMs - t0,
    postedMs,
    post: summary(postMs),
    commits,
    commitsPerRun: commits / count,
    requests,
  };
}

/** Transactions committed so far in the database at `url` (pg_stat_database.xact_commit). */
async function xactCommit(url) {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    const { rows } = await client.query('SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = current_database()');
    return Number(rows[0].n);
  } catch (err) {
    throw new BenchError(`cannot read pg_stat_database: ${err.message}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}
