import { createHash } from 'node:crypto';
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';

/**
 * Where Furrow, run as root, keeps what unprivileged accounts (PostgreSQL's, the job user) must
 * reach: root-owned and traversable (0711), outside any home or checkout, whose modes stay as
 * their owners set them.
 */
export const ROOT_STATE_DIR = '/var/lib/furrow';

/** The state dir of one data dir when run as root: keyed by the data dir's absolute path. */
export function rootStateDir(dataDir: string): string {
  return path.join(ROOT_STATE_DIR, createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 16));
}

/** Makes `rootStateDir(dataDir)` and its parent, both 0711 whatever the umask; returns it. */
export async function makeRootStateDir(dataDir: string): Promise<string> {
  const dir = rootStateDir(dataDir);
  for (const d of [ROOT_STATE_DIR, dir]) {
    await mkdir(d, { recursive: true });
    await chmod(d, 0o711);
  }
  return dir;
}
