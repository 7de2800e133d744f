import { AppError } from '../app-error.js';
import type { GitRepository } from '../git/read-workflow-files.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { RepositoryRow } from '../store/repository-store.js';
import { openDeployKey } from './deploy-key-box.js';

/**
 * What the server's git commands need of a repository: its URL, its opened deploy key (null while
 * it has none) and its pinned host keys. Throws `repository_key_unreadable` when the key was
 * sealed under another secret key.
 */
export function repositoryRemote(box: SecretBox, row: Pick<RepositoryRow, 'id' | 'url' | 'private_key' | 'known_hosts'>): GitRepository {
  const privateKey = openDeployKey(box, row);
  if (privateKey === 'unreadable') throw new AppError('repository_key_unreadable');
  return { id: row.id, url: row.url, privateKey, knownHosts: row.known_hosts };
}
