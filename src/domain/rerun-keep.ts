/** A job of a finished run, as a failed-only re-run looks at it. */
export interface RerunJob {
  /** The job id in the file, shared by a matrix's instances. */
  jobKey: string;
  /** Unique in the run: the id, or the id with the matrix values. */
  instanceKey: string;
  status: string;
  needs: readonly string[];
}

/**
 * The instances a failed-only re-run keeps: those that succeeded and all of whose needs (and
 * theirs, all the way up) are kept too. A job after one that runs again runs again itself — its
 * `if` is decided anew on the new outcome, as on GitHub's "re-run failed jobs".
 */
export function keptInstances(jobs: readonly RerunJob[]): Set<string> {
  const kept = new Set<string>();
  const byKey = new Map<string, RerunJob[]>();
  for (const j of jobs) byKey.set(j.jobKey, [...(byKey.get(j.jobKey) ?? []), j]);
  const memo = new Map<string, boolean>();
  const keeps = (j: RerunJob, seen: Set<string>): boolean => {
    const known = memo.get(j.instanceKey);
    if (known !== undefined) return known;
    if (seen.has(j.instanceKey)) return false; // a cycle cannot be compiled; stay safe anyway
    seen.add(j.instanceKey);
    const result = j.status === 'succeeded' && j.needs.every((k) => (byKey.get(k) ?? []).every((n) => keeps(n, seen)));
    memo.set(j.instanceKey, result);
    return result;
  };
  for (const j of jobs) if (keeps(j, new Set())) kept.add(j.instanceKey);
  return kept;
}
