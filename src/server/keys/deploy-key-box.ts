import type { SecretBox } from '../secrets/secret-box.js';

/** Binds a sealed deploy key to its repository: copied to another row, it does not open. */
const purpose = (repositoryId: string) => `deploy-key:${repositoryId}`;

export function sealDeployKey(box: SecretBox, repositoryId: string, privateKey: string): Buffer {
  return box.seal(privateKey, purpose(repositoryId));
}

/**
 * The repository's private key; null when it has none (not generated yet, or lost), and
 * `unreadable` when it was sealed under another secret key (FURROW_SECRET_KEY changed) or altered.
 */
export function openDeployKey(box: SecretBox, repo: { id: string; private_key: Buffer | null }): string | null | 'unreadable' {
  if (!repo.private_key) return null;
  try {
    return box.openText(repo.private_key, purpose(repo.id));
  } catch {
    return 'unreadable';
  }
}
