#!/usr/bin/env node
/**
 * Furrow benchmark: trigger-to-start latency, a `true` step, throughput under concurrent load, a
 * fast log producer, a 200 MiB log and webhook intake, each printed beside its floor or peer (the same work done straight
 * from Node, without Furrow). See bench/README.md.
 *
 *   node bench/run.mjs [--runs N] [--warmup N] [--step-runs N] [--throughput-runs N] [--log-runs N] [--intake-deliveries N] [--strict]
 *
 * Starts `node bin/furrow.js start` on a fresh temporary data dir (embedded PostgreSQL, or a fresh
 * database on DATABASE_URL when that is set), and removes everything it created afterwards.
 * Exit status: 0, or 1 with --strict when a target is missed; 2 on an error; 130 when interrupted.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { apiClient } from './lib/api-client.mjs';
import { BenchError } from './lib/bench-error.mjs';
import { assertBuilt, cleanup, reportServerState, startFurrow } from './lib/furrow-server.mjs';
import { largeLogScript, measureLargeLog } from './lib/large-log.mjs';
import { latencyScript, measureLatency } from './lib/latency.mjs';
import { measureLogProducer, producerScript } from './lib/log-producer.mjs';
import { printReport } from './lib/report.mjs';
import { CAPACITY, CLIENTS, measureThroughput, TRUE_SCRIPT } from './lib/throughput.mjs';
import { measureTrueStep } from './lib/true-step.mjs';
import { measureWebhookIntake } from './lib/webhook-intake.mjs';

const USAGE = `Usage: node bench/run.mjs [--runs N] [--warmup N] [--step-runs N] [--throughput-runs N] [--log-runs N] [--intake-deliveries N] [--strict]

  --runs N             measured trigger-to-start samples, Furrow and floor each (default 200)
  --warmup N           unmeasured warm-up runs before them (default 20)
  --step-runs N        one-at-a-time \`true\` runs timed by their step, and as many floor spawns (default 50)
  --throughput-runs N  \`true\` runs posted by ${CLIENTS} clients at runner capacity ${CAPACITY}, and as many
                       floor spawns ${CAPACITY} at a time (default 400)
  --log-runs N         jobs of each log figure (log producer, 200 MiB log) through Furrow; medians are
                       reported, the largest RSS growth (default 3)
  --intake-deliveries N  signed push deliveries for the webhook intake, Furrow and peer each (default 4000)
  --strict             exit with status 1 when a target is missed (default: 0 unless an error occurs)

Uses DATABASE_URL when set (a fresh database is created on it and dropped afterwards);
otherwise Furrow's embedded PostgreSQL in a temporary data dir.`;

function parseOptions(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        runs: { type: 'string', default: '200' },
        warmup: { type: 'string', default: '20' },
        'step-runs': { type: 'string', default: '50' },
        'throughput-runs': { type: 'string', default: '400' },
        'log-runs': { type: 'string', default: '3' },
        'intake-deliveries': { type: 'string', default: '4000' },
        strict: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new BenchError(`${err.message}\n\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const int = (name, min) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min) throw new BenchError(`--${name} must be an integer >= ${min} (got ${values[name]})\n\n${USAGE}`);
    return n;
  };
  return {
    runs: int('runs', 1),
    warmup: int('warmup', 0),
    stepRuns: int('step-runs', 1),
    throughputRuns: int('throughput-runs', 1),
    logRuns: int('log-runs', 1),
    intakeDeliveries: int('intake-deliveries', 1),
    strict: values.strict,
  };
}

const log = (msg) => process.stderr.write(`bench: ${msg}\n`);

async function main() {
  const opts = parseOptions(process.argv.slice(2));
  assertBuilt();
  if (process.platform !== 'linux') throw new BenchError('this benchmark reads /proc and needs Linux');

  const furrow = await startFurrow(log);
  const api = apiClient(furrow.baseUrl, furrow.token);
  const org = await api('POST', '/api/v1/organizations', { name: 'bench' });
  const project = await api('POST', '/api/v1/organizations/' + org.id + '/projects', { name: 'bench' });

  // Each probe is both a workflow and a script file that bash runs directly for the floor. The
  // scripts write their timestamps into probeDir, which the measurements watch.
  const probeDir = path.join(furrow.tmp, 'probe');
  // Writable for the unprivileged user jobs run as when the server runs as root.
  await mkdir(probeDir, { mode: 0o777 });
  await chmod(probeDir, 0o777);
  const addProbe = async (name, script, timeoutSeconds) => {
    const file = path.join(furrow.tmp, `${name}.sh`);
    await writeFile(file, script);
    const workflow = await api('POST', `/api/v1/projects/${project.id}/workflows`, { name, script, timeoutSeconds });
    return { file, workflowId: workflow.id };
  };
  const stampFile = path.join(probeDir, 'started');
  const latencyProbe = { stampFile, ...(await addProbe('latency', latencyScript(stampFile), 60)) };
  const trueProbe = { projectId: project.id, ...(await addProbe('true', TRUE_SCRIPT, 60)) };
  const producerTimes = path.join(probeDir, 'producer-times');
  const producerProbe = { timesFile: producerTimes, ...(await addProbe('log-producer', producerScript(producerTimes), 900)) };
  const timesFile = path.join(probeDir, 'log-times');
  const logProbe = { timesFile, ...(await addProbe('large-log', largeLogScript(timesFile), 900)) };

  const latency = await measureLatency(api, latencyProbe, opts, log);
  const trueStep = await measureTrueStep(api, trueProbe, opts.stepRuns, log);
  const throughput = await measureThroughput(api, trueProbe, opts.throughputRuns, furrow.databaseUrl, log);
  // The floor writes next to the data dir, so onto the filesystem the embedded database uses.
  const producer = await measureLogProducer(api, producerProbe, opts.logRuns, furrow, furrow.tmp, log);
  const largeLog = await measureLargeLog(api, logProbe, opts.logRuns, furrow, log);
  const intake = await measureWebhookIntake(api, project.id, opts.intakeDeliveries, furrow.tmp, log);
  const missed = printReport({ latency, trueStep, throughput, producer, largeLog, intake, opts, external: furrow.external });
  return missed > 0 && opts.strict ? 1 : 0;
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    interrupted = true;
    process.stderr.write(`\nbench: ${sig}: cleaning up\n`);
    cleanup().finally(() => process.exit(130));
  });
}

let code;
try {
  code = await main();
} catch (err) {
  if (!interrupted) {
    process.stderr.write(`bench: error: ${err instanceof BenchError ? err.message : (err.stack ?? err)}\n`);
    await reportServerState(err);
  }
  code = 2;
} finally {
  if (!interrupted) await cleanup();
}
if (!interrupted) process.exitCode = code;
