import { diffRefs, nextPollDelaySeconds } from '../../domain/ref-diff.js';
import type { RefChange } from '../../domain/forge-event.js';
import { listRemoteRefs } from '../git/list-refs.js';
import { repositoryRemote } from '../keys/repository-remote.js';
import type { RunStartDeps } from '../runs/start-run.js';
import type { DeliveryOutcome } from '../store/delivery-store.js';
import { failPoll, finishPoll, polledRefs, type ClaimedPoll } from '../store/poll-store.js';
import { startRepositoryEvent } from './start-repository-event.js';

/** What one poll found: the ref changes with the runs each started, or why it failed. */
export interface PollResult {
  repositoryId: string;
  changes: { change: RefChange; outcome: DeliveryOutcome }[];
  /** The first poll of a repository: it learned the refs, and started nothing. */
  first: boolean;
  error?: string;
}

/**
 * Polls a claimed repository (`git ls-remote`) and acts on what changed since the last poll: each
 * ref change starts the runs a push of it would (keyed like a push's, so a change the webhook
 * brought already starts nothing more). Each change acted on is stored, with its activity; one
 * that could not be (the remote or the database away) stays as the last poll saw it, so the next
 * poll, backed off, finds it again, and a poll that fails as a whole stores nothing.
 */
export async function pollRepository(deps: RunStartDeps, p: ClaimedPoll): Promise<PollResult> {
  const { db } = deps.database;
  const { intervalSeconds } = deps.config.poll;
  try {
    const [seen, known] = await Promise.all([listRemoteRefs(repositoryRemote(deps.secretBox, p.repo), deps.config.gitTimeoutSeconds), polledRefs(db, p.repo.id)]);
    const changes: PollResult['changes'] = [];
    let failed: string | undefined;
    for (const change of diffRefs(known, seen)) {
      try {
        const outcome = p.first ? { summary: 'learned', runs: [], skipped: [] } : await startRepositoryEvent(deps, p.repo, { kind: 'push', change }, { poll: true });
        changes.push({ change, outcome });
      } catch (err) {
        // This ref stays as the last poll saw it, to be acted on next time; the others go on.
        failed ??= `${change.ref}: ${err instanceof Error ? err.message : String(err)}`;
      }
    }
    const next = nextPollDelaySeconds(intervalSeconds, failed ? p.failures + 1 : 0, Math.random());
    await finishPoll(db, p, changes, next, failed ?? null);
    return { repositoryId: p.repo.id, changes: p.first ? [] : changes, first: p.first, ...(failed ? { error: failed } : {}) };
  } catch (err) {
    // Whatever failed (the remote, the deploy key, the database), the next poll backs off and tries again.
    const message = err instanceof Error ? err.message : String(err);
    await failPoll(db, p, message, nextPollDelaySeconds(intervalSeconds, p.failures + 1, Math.random()));
    return { repositoryId: p.repo.id, changes: [], first: p.first, error: message };
  }
}
