import { claimPolls } from '../server/store/poll-store.js';
import { pollRepository, type PollResult } from '../server/triggers/poll-repository.js';
import { migrateTaskQueue } from '../server/workers/start-workers.js';
import { createLogger } from './create-logger.js';
import { existingSecretBox } from './keys-command.js';
import { parseFlags } from './parse-flags.js';
import { UsageError } from './usage-error.js';
import { withDatabase } from './with-database.js';

export const preflightHelp = `Usage: furrow preflight --once

Polls every repository that is polled (one with workflows of a definition or file, or git triggers,
and polling on) once, now, whether or not its interval has passed: \`git ls-remote\` with its deploy
key, then what changed since the last poll starts runs, as the server's own poller does
(FURROW_POLL_INTERVAL_SECONDS). Prints each ref change with the runs it started, and exits 1 when a
repository could not be polled. A repository polled for the first time only has its refs learned.
Works whether or not the server runs; runs it starts wait for a runner.`;

const short = (sha: string | null) => sha?.slice(0, 12) ?? '-';

function report(name: string, r: PollResult): string {
  if (r.error) return `${name}: not polled: ${r.error}\n`;
  if (r.first) return `${name}: first poll, refs learned\n`;
  if (r.changes.length === 0) return `${name}: no changes\n`;
  const lines = r.changes.map(({ change, outcome }) => {
    const runs = outcome.runs.map((run) => `${run.workflow} #${run.number}${run.existing ? ' (already)' : ''}`).join(', ');
    return `  ${change.ref} ${change.type} ${short(change.before)} -> ${short(change.after)}: ${runs ? `runs ${runs}` : 'no run'}\n`;
  });
  return `${name}: ${r.changes.length} ${r.changes.length === 1 ? 'change' : 'changes'}\n${lines.join('')}`;
}

export async function preflightCommand(args: string[]): Promise<number> {
  const { positionals, values } = parseFlags(args, { once: { type: 'boolean' } });
  if (!values.once || positionals.length > 0) throw new UsageError(preflightHelp);
  return withDatabase(async (database, config) => {
    const secretBox = await existingSecretBox(config);
    // A run's end may queue background tasks: their schema must exist even if no server ever ran.
    await migrateTaskQueue({ database, logger: createLogger('warn', 'stderr') });
    const deps = { database, secretBox, config };
    const claimed = await claimPolls(database.db, 100_000, 4 * config.gitTimeoutSeconds + 60, true);
    let failed = 0;
    for (let i = 0; i < claimed.length; i += config.poll.concurrency) {
      const batch = claimed.slice(i, i + config.poll.concurrency);
      for (const [j, r] of (await Promise.all(batch.map((p) => pollRepository(deps, p)))).entries()) {
        if (r.error) failed++;
        process.stdout.write(report(batch[j]!.repo.name, r));
      }
    }
    if (claimed.length === 0) process.stdout.write('No repository is polled: none has workflows of a definition or file, or git triggers, with polling on.\n');
    return failed > 0 ? 1 : 0;
  });
}
