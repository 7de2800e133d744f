/** The printed result: a header, the table of figures against floors and targets, and notes. */
import { availableParallelism } from 'node:os';
import { FLOOR_LOG_REPEATS, LOG_BYTES, LOG_LINE_BYTES, LOG_LINES, RSS_SAMPLE_MS } from './large-log.mjs';
import { PRODUCER_BYTES, PRODUCER_COMMAND } from './log-producer.mjs';
import { CAPACITY, CLIENTS, STATS_SETTLE_MS } from './throughput.mjs';
import { INTAKE_CONNECTIONS } from './webhook-intake.mjs';

const TARGET = {
  latencyP50Ms: 10,
  latencyP99Ms: 40,
  trueStepRatio: 2,
  runsPerS: 200,
  throughputRatio: 0.3,
  producerRatio: 3,
  logRatio: 1.3,
  rssGrowthBytes: 64 * 1024 * 1024,
  intakePerS: 2000,
  intakeP99Ms: 50,
};

const fmtMs = (ms) => `${ms.toFixed(1)} ms`;
const fmtS = (ms) => `${(ms / 1000).toFixed(2)} s`;
const fmtMiB = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;
const fmtRate = (perS) => `${perS.toFixed(1)} runs/s`;
const fmtPerS = (perS) => `${perS.toFixed(0)}/s`;
const ratio = (a, b) => `${(a / b).toFixed(2)}x`;
const verdict = (ok) => (ok ? 'PASS' : 'MISS');

/** CPU use of the run whose script time is the median. */
const medianCpu = (runs, scriptMs) => runs.find((r) => r.scriptMs === scriptMs).cpu;

function table(rows) {
  const head = ['Figure', 'Furrow', 'Floor', 'Target', 'Result'];
  const all = [head, ...rows];
  const widths = head.map((_, i) => Math.max(...all.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => String(c).padEnd(widths[i])).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/**
 * Writes the report to stdout and returns the number of targets missed. `latency`, `trueStep`,
 * `throughput`, `producer` and `largeLog` are what measureLatency(), measureTrueStep(),
 * measureThroughput(), measureLogProducer() and measureLargeLog() resolved with; `external` says
 * the database is on DATABASE_URL, whose CPU time cannot be read.
 */
export function printReport({ latency, trueStep, throughput, producer, largeLog, intake, opts, external }) {
  const { furrow: furrowLat, floor: floorLat } = latency;
  const { furrow: tp, floor: tpFloor } = throughput;
  const { floorScriptMs, floorWallMs, pipedScriptMs, runs: logRuns, big, download } = largeLog;
  const checks = [];
  const check = (ok) => {
    checks.push(ok);
    return verdict(ok);
  };
  const rows = [
    ['Trigger-to-start p50', fmtMs(furrowLat.p50), fmtMs(floorLat.p50), `<= ${TARGET.latencyP50Ms} ms`, check(furrowLat.p50 <= TARGET.latencyP50Ms)],
    ['Trigger-to-start p90', fmtMs(furrowLat.p90), fmtMs(floorLat.p90), '-', ''],
    ['Trigger-to-start p99', fmtMs(furrowLat.p99), fmtMs(floorLat.p99), `<= ${TARGET.latencyP99Ms} ms`, check(furrowLat.p99 <= TARGET.latencyP99Ms)],
    ['Trigger-to-start max', fmtMs(furrowLat.max), fmtMs(floorLat.max), '-', ''],
    [
      '`true` step p50',
      `${fmtMs(trueStep.furrow.p50)} (${ratio(trueStep.furrow.p50, trueStep.floor.p50)})`,
      `${fmtMs(trueStep.floor.p50)} (bash -c true)`,
      `<= ${TARGET.trueStepRatio}x floor`,
      check(trueStep.furrow.p50 <= TARGET.trueStepRatio * trueStep.floor.p50),
    ],
    ['`true` step p90', fmtMs(trueStep.furrow.p90), fmtMs(trueStep.floor.p90), '-', ''],
    ['Throughput', fmtRate(tp.runsPerS), `${fmtRate(tpFloor.runsPerS)} (${CAPACITY}-wide spawn)`, `>= ${TARGET.runsPerS} runs/s`, check(tp.runsPerS >= TARGET.runsPerS)],
    ['Throughput / floor', ratio(tp.runsPerS, tpFloor.runsPerS), '-', `>= ${TARGET.throughputRatio}x`, check(tp.runsPerS >= TARGET.throughputRatio * tpFloor.runsPerS)],
    ['POST latency under load p50', fmtMs(tp.post.p50), '-', '-', ''],
    ['POST latency under load p99', fmtMs(tp.post.p99), '-', '-', ''],
    ['Database commits per run', tp.commitsPerRun.toFixed(1), '-', '-', ''],
    [
      'Log producer: script elapsed',
      `${fmtS(producer.scriptMs)} (${ratio(producer.scriptMs, producer.floorScriptMs)})`,
      `${fmtS(producer.floorScriptMs)} (> file)`,
      `<= ${TARGET.producerRatio}x floor`,
      check(producer.scriptMs <= TARGET.producerRatio * producer.floorScriptMs),
    ],
    [
      'Log producer: job duration (API)',
      `${fmtS(producer.jobMs)} (${ratio(producer.jobMs, producer.floorWallMs)})`,
      `${fmtS(producer.floorWallMs)} (spawn to exit)`,
      `<= ${TARGET.producerRatio}x floor`,
      check(producer.jobMs <= TARGET.producerRatio * producer.floorWallMs),
    ],
    ['Log producer: server RSS growth', fmtMiB(producer.rssGrowth), '-', `<= ${fmtMiB(TARGET.rssGrowthBytes)}`, check(producer.rssGrowth <= TARGET.rssGrowthBytes)],
    ['Log producer: stored output (logSize without step markers)', `${producer.outputBytes} B`, `${PRODUCER_BYTES} B written`, 'equal', check(producer.sizesOk)],
    [
      '200 MiB log: script elapsed',
      `${fmtS(big.scriptMs)} (${(big.scriptMs / floorScriptMs).toFixed(2)}x)`,
      fmtS(floorScriptMs),
      `<= ${TARGET.logRatio}x floor`,
      check(big.scriptMs <= TARGET.logRatio * floorScriptMs),
    ],
    [
      '200 MiB log: job duration (API)',
      `${fmtS(big.jobMs)} (${(big.jobMs / floorWallMs).toFixed(2)}x)`,
      `${fmtS(floorWallMs)} (spawn to exit)`,
      `<= ${TARGET.logRatio}x floor`,
      check(big.jobMs <= TARGET.logRatio * floorWallMs),
    ],
    ['200 MiB log: server RSS growth', fmtMiB(big.rssGrowth), '-', `<= ${fmtMiB(TARGET.rssGrowthBytes)}`, check(big.rssGrowth <= TARGET.rssGrowthBytes)],
    ['200 MiB log: stored output (logSize without step markers)', `${big.outputBytes} B`, `${LOG_BYTES} B written`, 'equal', check(big.sizesOk)],
    ['Webhook intake', fmtPerS(intake.furrow.perS), `${fmtPerS(intake.peer.perS)} (webhook)`, `>= ${TARGET.intakePerS}/s`, check(intake.furrow.perS >= TARGET.intakePerS)],
    ['Webhook intake p50', fmtMs(intake.furrow.p50), fmtMs(intake.peer.p50), '-', ''],
    ['Webhook intake p99', fmtMs(intake.furrow.p99), fmtMs(intake.peer.p99), `<= ${TARGET.intakeP99Ms} ms`, check(intake.furrow.p99 <= TARGET.intakeP99Ms)],
    ['Webhook redelivery (duplicate)', `${fmtPerS(intake.duplicates.perS)}, p99 ${fmtMs(intake.duplicates.p99)}`, '-', '-', ''],
  ];

  const cpuLine = medianCpu(logRuns, big.scriptMs);
  const out = [
    '',
    `Furrow benchmark — node ${process.version}, ${availableParallelism()} CPUs, ${external ? 'external PostgreSQL (DATABASE_URL)' : 'embedded PostgreSQL'}`,
    `Trigger-to-start: ${furrowLat.n} sequential runs after ${opts.warmup} warm-up (floor: ${floorLat.n} × spawn('bash', [file]))`,
    `\`true\` step: finishedAt − startedAt of the step of ${trueStep.furrow.n} sequential runs (floor: ${trueStep.floor.n} × spawn('bash', ['-c', 'true']) to exit)`,
    `Throughput: ${opts.throughputRuns} \`true\` runs posted by ${CLIENTS} clients, local runner capacity ${CAPACITY}, first POST to last finishedAt` +
      ` (floor: as many spawn('bash', [file]), ${CAPACITY} at a time)`,
    `Log producer: \`${PRODUCER_COMMAND}\`; ${opts.logRuns} Furrow run(s), floor = median of ${FLOOR_LOG_REPEATS} into a file beside the data dir`,
    `Webhook intake: ${opts.intakeDeliveries} signed GitHub push deliveries (${INTAKE_CONNECTIONS} keep-alive connections), each stored and answered 202, then each again (a duplicate);` +
      ' peer: webhook (adnanh/webhook) checking the same signature and running nothing',
    `Large log: ${LOG_BYTES} bytes (200 MiB) = ${LOG_LINES} lines × ${LOG_LINE_BYTES} B from \`seq -f …\`; ${opts.logRuns} Furrow run(s), floor = median of ${FLOOR_LOG_REPEATS} to /dev/null`,
    '',
    table(rows),
    '',
    `Notes: trigger-to-start min ${fmtMs(furrowLat.min)} (floor ${fmtMs(floorLat.min)}); large log POST-to-finished ${fmtS(big.e2eMs)};`,
    `  throughput: all POSTs answered after ${fmtS(tp.postedMs)}, last run ended after ${fmtS(tp.elapsedMs)}; POST latency max ${fmtMs(tp.post.max)};` +
      ` ${tp.commits} commits in the database from the first POST to ${STATS_SETTLE_MS / 1000} s after the last run,` +
      ` which include the background worker's and those of the bench's ${tp.requests} API requests`,
    `  log producer job times over ${producer.runs.length} run(s): ${producer.runs.map((r) => fmtS(r.jobMs)).join(', ')};` +
      ` CPU in the median run: server (node) ${medianCpu(producer.runs, producer.scriptMs).serverS.toFixed(2)} s;` +
      ` reference into /dev/null: ${fmtS(producer.devNullScriptMs)} (Furrow ${ratio(producer.scriptMs, producer.devNullScriptMs)} that)`,
    `  RSS before the first log run ${fmtMiB(logRuns[0].rssBefore)}, ${logRuns[0].rssSamples} samples every ${RSS_SAMPLE_MS} ms` +
      (big.peakGrowth !== undefined ? `, exact peak (VmHWM) growth ${fmtMiB(big.peakGrowth)}` : ''),
    `  large log script elapsed over ${logRuns.length} run(s): ${logRuns.map((r) => fmtS(r.scriptMs)).join(', ')};` +
      ` reference \`bash script | cat > /dev/null\` (any pipe capture): ${fmtS(pipedScriptMs)} (${(pipedScriptMs / floorScriptMs).toFixed(2)}x the floor)`,
    `  CPU during the median Furrow log run: server (node) ${cpuLine.serverS.toFixed(2)} s, PostgreSQL ${external ? 'n/a (external)' : `${cpuLine.postgresS.toFixed(2)} s`},` +
      ` job (bash + seq) ${cpuLine.jobS.toFixed(2)} s; whole machine ${(cpuLine.machineBusy * 100).toFixed(0)}% busy`,
    `  log read back: ${download.bytes} B in ${fmtS(download.ms)}, last line ${download.lastLineOk ? 'as written' : 'DIFFERENT'}`,
    '',
  ];
  process.stdout.write(out.join('\n'));
  const missed = checks.filter((ok) => !ok).length;
  if (missed > 0) process.stdout.write(`${missed} target(s) missed${opts.strict ? '' : ' (exit code 0; pass --strict to fail)'}\n`);
  else process.stdout.write('all targets met\n');
  return missed;
}
