import { AppError } from '../app-error.js';

/**
 * Deleting an organization or a project takes its name as well as its id, so that a mistyped or
 * rewritten URL (`/organizations/ID/members/..`, which clients shorten to `/organizations/ID/`)
 * deletes nothing.
 */
export function confirmDeletion(what: 'organization' | 'project', name: string, confirm: string | undefined): void {
  const how = `send DELETE with ?confirm=${encodeURIComponent(name)}`;
  if (!confirm) throw new AppError('confirmation_required', `To delete the ${what} "${name}", name it: ${how}.`);
  if (confirm !== name) throw new AppError('confirmation_mismatch', `"${confirm}" is not the name of this ${what}; to delete "${name}", ${how}.`);
}
