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
 * brought already starts nothing more). The refs are stored, with an activity per change, once
 * every change was acted on: a poll that fails (the remote or the database away) stores nothing,
 * and the next poll, backed off, finds the same changes again.
 */
export async function pollRepository(deps: RunStartDeps, p: ClaimedPoll): Promise<PollResult> {
  const { db } = deps.database;
  const { intervalSeconds } = deps.config.poll;
  try {
    const [seen, known] = await Promise.all([listRemoteRefs(repositoryRemote(deps.secretBox, p.repo), deps.config.gitTimeoutSeconds), polledRefs(db, p.repo.id)]);
    const changes: PollResult['changes'] = [];
    for (const change of diffRefs(known, seen)) {
      const outcome = p.first ? { summary: 'learned', runs: [], skipped: [] } : await startRepositoryEvent(deps, p.repo, { kind: 'push', change }, { poll: true });
      changes.push({ change, outcome });
    }
    await finishPoll(db, p, changes, nextPollDelaySeconds(intervalSeconds, 0, Math.random()));
    return { repositoryId: p.repo.id, changes: p.first ? [] : changes, first: p.first };
  } catch (err) {
    // Whatever failed (the remote, the deploy key, the database), the next poll backs off and tries again.
    const message = err instanceof Error ? err.message : String(err);
    await failPoll(db, p, message, nextPollDelaySeconds(intervalSeconds, p.failures + 1, Math.random()));
    return { repositoryId: p.repo.id, changes: [], first: p.first, error: message };
  }
}
