/** Single-quotes `s` for bash. */
export const shq = (s) => `'${String(s).replaceAll("'", `'\\''`)}'`;

/** Resolves with the exit code once `child` has exited and closed its stdio; rejects if it cannot start. */
export function closed(child) {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
}

/** Resolves when `child` has exited (at once if it already has). */
export function exited(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}
