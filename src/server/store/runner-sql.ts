import { sql } from 'kysely';

/** A runner is online while connected and seen within this long (heartbeats come every 15 s). */
export const ONLINE_WINDOW_SECONDS = 45;

/**
 * Whether the `runners` row in scope is online. `connected` alone is not trusted: a server
 * instance that died cannot clear it, so its heartbeat must also be recent.
 */
export const runnerOnline = sql<boolean>`(runners.connected AND runners.last_seen_at > now() - make_interval(secs => ${ONLINE_WINDOW_SECONDS}))`;

/** Jobs the `runners` row in scope holds (claimed or running): what its capacity counts. */
export const runnerHeldJobs = sql<number>`(SELECT count(*) FROM jobs held WHERE held.runner_id = runners.id::text AND held.status IN ('queued', 'running'))`;
