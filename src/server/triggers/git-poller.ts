import type { Resources } from '../resources.js';
import { claimPolls, msUntilNextPoll } from '../store/poll-store.js';
import { pollRepository } from './poll-repository.js';
import { startWakeLoop, type WakeLoop } from './wake-loop.js';

/** How long a claimed poll is this instance's: the ls-remote, then the runs it starts (each may read the repository). */
const holdSeconds = (gitTimeoutSeconds: number) => 4 * gitTimeoutSeconds + 60;

/**
 * Polls repositories when their interval has passed, on every instance, a few at a time
 * (FURROW_POLL_CONCURRENCY); each due poll is claimed by one instance. Between rounds it sleeps
 * until the next poll is due, or a change of triggers (`furrow_triggers`) wakes it.
 */
export function startGitPoller(res: Pick<Resources, 'database' | 'secretBox' | 'config' | 'listener' | 'logger'>): WakeLoop {
  const { db } = res.database;
  const { concurrency } = res.config.poll;
  const round = async () => {
    const due = await claimPolls(db, concurrency, holdSeconds(res.config.gitTimeoutSeconds));
    await Promise.all(due.map((p) => pollRepository(res, p).catch((err: Error) => res.logger.warn({ err, repositoryId: p.repo.id }, 'a repository could not be polled; it is polled again once its hold has passed'))));
    return { took: due.length, full: due.length === concurrency };
  };
  return startWakeLoop(res.listener, 'furrow_triggers', round, () => msUntilNextPoll(db), (err) =>
    res.logger.warn({ err }, 'the git poller could not reach the database; it tries again in a second'),
  );
}
