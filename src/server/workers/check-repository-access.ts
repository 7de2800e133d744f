import type { Task } from 'graphile-worker';
import type { Db } from '../../db/database.js';
import { AppError, notFound } from '../app-error.js';
import { checkAccess } from '../git/check-access.js';
import { repositoryRemote } from '../keys/repository-remote.js';
import type { SecretBox } from '../secrets/secret-box.js';
import { getRepository, getRepositoryRow, recordAccessCheck, type Repository } from '../store/repository-store.js';
import { payloadId } from './tasks.js';

export interface AccessCheckDeps {
  db: Db;
  secretBox: SecretBox;
  gitTimeoutSeconds: number;
}

/**
 * Checks that the repository can be read with its deploy key, records the outcome (pinning the
 * host keys seen on first contact) and returns the updated repository. Throws
 * `repository_key_pending` while the key is not made yet.
 */
export async function checkRepositoryAccess(deps: AccessCheckDeps, repositoryId: string, actorUserId: string | null): Promise<Repository> {
  const row = await getRepositoryRow(deps.db, repositoryId);
  if (!row) throw notFound('Repository');
  if (!row.private_key) throw new AppError('repository_key_pending');
  const outcome = await checkAccess(repositoryRemote(deps.secretBox, row), deps.gitTimeoutSeconds);
  // Changed meanwhile: the check its change queued tells; until then the repository is as it is.
  const repo = (await recordAccessCheck(deps.db, { id: row.id, url: row.url, fingerprint: row.key_fingerprint }, outcome, actorUserId)) ?? (await getRepository(deps.db, repositoryId));
  if (!repo) throw notFound('Repository');
  return repo;
}

/** The `check-repository-access` task: a repository deleted or not keyed meanwhile is skipped. */
export function checkRepositoryAccessTask(deps: AccessCheckDeps): Task {
  return async (payload, helpers) => {
    try {
      const repo = await checkRepositoryAccess(deps, payloadId(payload, 'repositoryId'), null);
      helpers.logger.debug(`repository ${repo.id} access: ${repo.access.status}`);
    } catch (err) {
      if (!(err instanceof AppError) || err.status >= 500) throw err;
      helpers.logger.info(`repository access not checked: ${err.message}`);
    }
  };
}
