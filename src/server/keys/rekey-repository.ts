import type { Db } from '../../db/database.js';
import type { SecretBox } from '../secrets/secret-box.js';
import { storeDeployKey, type Repository } from '../store/repository-store.js';
import { sealDeployKey } from './deploy-key-box.js';
import { generateDeployKey } from './deploy-key.js';

export interface KeyDeps {
  db: Db;
  secretBox: SecretBox;
}

/**
 * Gives a repository a new deploy key of its key type, replacing any earlier one, and queues an
 * access check. The old key stops working once the forge's deploy key is replaced by the new
 * public key. Undefined when the repository does not exist (any more).
 */
export async function rekeyRepository(
  deps: KeyDeps,
  repositoryId: string,
  activity: { type: 'repository.key_generated' | 'repository.rekeyed'; actorUserId: string | null },
): Promise<Repository | undefined> {
  const repo = await deps.db
    .selectFrom('repositories as r')
    .innerJoin('projects as p', 'p.id', 'r.project_id')
    .select(['r.name', 'r.key_type', 'p.name as project'])
    .where('r.id', '=', repositoryId)
    .executeTakeFirst();
  if (!repo) return undefined;
  // The comment shows on the forge's deploy key page: it says whose key it is (one word).
  const key = await generateDeployKey(repo.key_type, `furrow:${repo.project}/${repo.name}`.replace(/\s+/g, '-'));
  return storeDeployKey(
    deps.db,
    repositoryId,
    { publicKey: key.publicKey, sealedPrivateKey: sealDeployKey(deps.secretBox, repositoryId, key.privateKey), fingerprint: key.fingerprint },
    activity,
  );
}
