/**
 * The 200 MiB log: how long a job writing it takes through Furrow against bash writing it to
 * /dev/null, how much the server's memory grows meanwhile, and whether the stored log is complete.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { describeRun, waitForRun } from './api-client.mjs';
import { BenchError } from './bench-error.mjs';
import { closed, shq } from './child-process.mjs';
import { epochRealtimeMs, now } from './clock.mjs';
import { cpuSnapshot, cpuUsage } from './cpu-usage.mjs';
import { median } from './stats.mjs';

/** 200 MiB of log: LOG_LINES lines of exactly 64 bytes ("line 0000000001: … dog...\n"). */
export const LOG_BYTES = 200 * 1024 * 1024;
export const LOG_LINE_BYTES = 64;
export const LOG_LINES = LOG_BYTES / LOG_LINE_BYTES;
const LOG_COMMAND = `seq -f 'line %010.0f: the quick brown fox jumps over the lazy dog...' 1 ${LOG_LINES}`;
const LOG_LAST_LINE = `line ${String(LOG_LINES).padStart(10, '0')}: the quick brown fox jumps over the lazy dog...`;

export const FLOOR_LOG_REPEATS = 3;
export const RSS_SAMPLE_MS = 50;

/** A job script that times `command` itself, so its elapsed time excludes Furrow's own overhead. */
export const timedScript = (command, timesFile) =>
  `start=$EPOCHREALTIME\n${command}\nend=$EPOCHREALTIME\nprintf '%s %s\\n' "$start" "$end" > ${shq(timesFile)}\n`;

export const largeLogScript = (timesFile) => timedScript(LOG_COMMAND, timesFile);

/**
 * Floor and pipe reference (FLOOR_LOG_REPEATS each), then `logRuns` jobs through Furrow, then one
 * read-back of the last job's log. `probe` is { file, timesFile, workflowId } for largeLogScript
 * (timesFile); `server` is { pid, baseUrl, token }. Medians are taken, the worst RSS growth.
 */
export async function measureLargeLog(api, probe, logRuns, server, log) {
  log(`large log floor: ${FLOOR_LOG_REPEATS} × bash ${path.basename(probe.file)} > /dev/null, then ${FLOOR_LOG_REPEATS} × through | cat`);
  const floors = await repeat(FLOOR_LOG_REPEATS, () => floorLog(probe));
  const piped = await repeat(FLOOR_LOG_REPEATS, () => floorLog(probe, { throughCat: true }));
  const runs = await repeat(logRuns, (i) => {
    log(`large log through Furrow: run ${i + 1} of ${logRuns} (${LOG_BYTES} bytes)`);
    return furrowLog(api, probe, server);
  });
  const big = {
    scriptMs: median(runs.map((r) => r.scriptMs)),
    jobMs: median(runs.map((r) => r.jobMs)),
    e2eMs: median(runs.map((r) => r.e2eMs)),
    rssGrowth: Math.max(...runs.map((r) => r.rssGrowth)),
    peakGrowth: runs.every((r) => r.peakGrowth !== undefined) ? Math.max(...runs.map((r) => r.peakGrowth)) : undefined,
    sizesOk: runs.every((r) => r.outputBytes === LOG_BYTES),
    outputBytes: runs[runs.length - 1].outputBytes,
  };
  log('reading the stored log back');
  const download = await downloadLog(server, runs[runs.length - 1].jobId);
  return {
    floorScriptMs: median(floors.map((f) => f.scriptMs)),
    floorWallMs: median(floors.map((f) => f.wallMs)),
    pipedScriptMs: median(piped.map((f) => f.scriptMs)),
    runs,
    big,
    download,
  };
}

/** Runs `fn(i)` `count` times, one after the other (runs must not overlap: they are timed). */
export async function repeat(count, fn) {
  const results = [];
  for (let i = 0; i < count; i++) results.push(await fn(i));
  return results;
}

/** The script's own elapsed time, from the two stamps it wrote. */
async function scriptElapsedMs(timesFile) {
  const [start, end] = (await readFile(timesFile, 'utf8')).trim().split(/\s+/).map(epochRealtimeMs);
  return end - start;
}

/**
 * The log script run by bash from Node with stdout on `outFile` (default /dev/null); the script
 * times itself. With `throughCat`, stdout goes through a pipe to `cat` first: a reference for
 * what capturing output through any pipe costs (not the floor).
 */
export async function floorLog({ file, timesFile }, { throughCat = false, outFile = '/dev/null' } = {}) {
  await unlink(timesFile).catch(() => undefined);
  const out = openSync(outFile, 'w');
  const t0 = now();
  const child = throughCat
    ? spawn('bash', ['-c', `bash ${shq(file)} | cat`], { stdio: ['ignore', out, 'pipe'] })
    : spawn('bash', [file], { stdio: ['ignore', out, 'pipe'] });
  closeSync(out);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await closed(child);
  const wallMs = now() - t0;
  if (code !== 0) throw new BenchError(`the floor log script exited with ${code}: ${stderr.slice(-500)}`);
  return { scriptMs: await scriptElapsedMs(timesFile), wallMs };
}

/** One job of the log workflow through Furrow: script and job times, server RSS growth and CPU. */
export async function furrowLog(api, { workflowId, timesFile }, server) {
  const serverPid = server.pid;
  await unlink(timesFile).catch(() => undefined);
  const rss = sampleRss(serverPid);
  const cpuBefore = cpuSnapshot(serverPid);
  const t0 = now();
  let run;
  let done;
  try {
    run = await api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
    done = await waitForRun(api, run.id, { timeoutMs: 600_000, intervalMs: 250 });
  } finally {
    rss.stop();
  }
  const e2eMs = now() - t0;
  const cpu = cpuUsage(serverPid, cpuBefore, cpuSnapshot(serverPid));
  const memory = rss.result();
  if (done.status !== 'succeeded') throw new BenchError(`the large-log run ended ${done.status}; ${await describeRun(api, run.id)}`);
  const job = (await api('GET', `/api/v1/runs/${run.id}/jobs`)).items[0];
  const logSize = Number(job.logSize);
  return {
    runId: run.id,
    jobId: job.id,
    scriptMs: await scriptElapsedMs(timesFile),
    jobMs: Date.parse(job.finishedAt) - Date.parse(job.startedAt),
    e2eMs,
    outputBytes: logSize - (await markerBytes(server, job.id, logSize)),
    ...memory,
    cpu,
  };
}

/**
 * Samples the server's VmRSS every RSS_SAMPLE_MS until stop(). result() adds a last reading and
 * gives the growth over the reading at the start; also the exact peak (VmHWM), where it could be
 * reset first, which needs write access to /proc/PID/clear_refs.
 */
function sampleRss(pid) {
  const peakResettable = resetPeakRss(pid);
  const before = rssBytes(pid);
  let maxRss = before;
  let samples = 0;
  const sampler = setInterval(() => {
    try {
      maxRss = Math.max(maxRss, rssBytes(pid));
      samples += 1;
    } catch {
      // the server is gone; the run wait reports it
    }
  }, RSS_SAMPLE_MS);
  return {
    stop: () => clearInterval(sampler),
    result() {
      maxRss = Math.max(maxRss, rssBytes(pid));
      const peak = peakResettable ? peakRssBytes(pid) : undefined;
      return { rssBefore: before, rssGrowth: maxRss - before, peakGrowth: peak !== undefined ? peak - before : undefined, rssSamples: samples };
    },
  };
}

function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new BenchError(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

function resetPeakRss(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

function peakRssBytes(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : undefined;
}

const logUrl = (baseUrl, jobId, offset = 0) => `${baseUrl}/api/v1/jobs/${jobId}/log?offset=${offset}`;

/**
 * The bytes of the step markers around the job's one step (docs/api.md, "Logs"): its first line
 * and its last, read from the log's two ends only.
 */
async function markerBytes({ baseUrl, token }, jobId, logSize) {
  const headers = { authorization: `Bearer ${token}` };
  const head = await fetch(logUrl(baseUrl, jobId), { headers });
  let first = Buffer.alloc(0);
  for await (const chunk of head.body) {
    first = Buffer.concat([first, chunk]);
    if (first.includes(10)) break; // leaving the loop cancels the rest of the body
  }
  const tail = await (await fetch(logUrl(baseUrl, jobId, Math.max(0, logSize - 512)), { headers })).text();
  const lines = tail.split('\n');
  return first.indexOf(10) + 1 + Buffer.byteLength(lines[lines.length - 2] ?? '') + 1;
}

/** Streams the stored log back and checks its length and last line before the end marker (a check, not a target). */
async function downloadLog({ baseUrl, token }, jobId) {
  const t0 = now();
  const res = await fetch(logUrl(baseUrl, jobId), { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new BenchError(`GET /api/v1/jobs/${jobId}/log answered ${res.status}`);
  let bytes = 0;
  let tail = Buffer.alloc(0);
  for await (const chunk of res.body) {
    bytes += chunk.byteLength;
    tail = Buffer.concat([tail, chunk]).subarray(-4 * LOG_LINE_BYTES);
  }
  const lines = tail.toString('utf8').trimEnd().split('\n');
  return { bytes, ms: now() - t0, lastLineOk: lines[lines.length - 2] === LOG_LAST_LINE };
}
