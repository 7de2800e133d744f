import type { Task } from 'graphile-worker';
import { rekeyRepository, type KeyDeps } from '../keys/rekey-repository.js';
import { payloadId } from './tasks.js';

/**
 * The `generate-deploy-key` task: makes the new repository's key (then its access check is
 * queued). A repository that has a key already, or is gone, is left alone, so a retried task
 * never replaces a key someone may have added to a forge.
 */
export function generateDeployKeyTask(deps: KeyDeps): Task {
  return async (payload, helpers) => {
    const repositoryId = payloadId(payload, 'repositoryId');
    const row = await deps.db.selectFrom('repositories').select('public_key').where('id', '=', repositoryId).executeTakeFirst();
    if (!row || row.public_key) return;
    const repo = await rekeyRepository(deps, repositoryId, { type: 'repository.key_generated', actorUserId: null });
    if (repo) helpers.logger.info(`generated the ${repo.keyType} deploy key ${repo.keyFingerprint} of repository ${repo.id}`);
  };
}
