import { parseMarker } from '../../src/domain/log-markers.js';

/** One job's log without the runner's step markers (those carrying the key of its first line). */
export function jobOutput(log: string): string {
  const first = parseMarker(log.slice(0, log.indexOf('\n')));
  if (first?.kind !== 'start') return log;
  return log
    .split(/(?<=\n)/)
    .filter((line) => {
      const m = parseMarker(line.replace(/\n$/, ''));
      return !(m && m.kind !== 'job' && m.key === first.key);
    })
    .join('');
}

/** A run's log cut into its jobs along their headers, each header's byte count taken as it says. */
export function runJobs(log: string): { jobId: string; title: string; log: string }[] {
  const bytes = Buffer.from(log);
  const jobs: { jobId: string; title: string; log: string }[] = [];
  for (let at = 0; at < bytes.length; ) {
    const end = bytes.indexOf('\n', at);
    const header = parseMarker(bytes.subarray(at, end).toString());
    if (header?.kind !== 'job') throw new Error(`no job header at byte ${at} of the run log`);
    jobs.push({ jobId: header.jobId, title: header.name, log: bytes.subarray(end + 1, end + 1 + header.logBytes).toString() });
    at = end + 1 + header.logBytes;
  }
  return jobs;
}

/** What the steps of a run's jobs wrote, without headers and markers, one job after the other. */
export function runOutput(log: string): string {
  return runJobs(log)
    .map((j) => jobOutput(j.log))
    .join('');
}
