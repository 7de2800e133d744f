import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A tiny local image (no registry needed): busybox-static and its applets, without bash. */
export const BUSYBOX_IMAGE = 'localhost/furrow-test-busybox';
/** What the image's /etc/os-release holds, so a test can tell it ran inside the image. */
export const BUSYBOX_MARKER = 'NAME="Furrow test busybox"';
const BUSYBOX = '/bin/busybox';

/**
 * Builds BUSYBOX_IMAGE with `podman import` unless it exists already; it is kept for later runs.
 * Its /etc/passwd knows root alone, as many images do not know the job user.
 */
export async function ensureBusyboxImage(): Promise<string> {
  const exists = await run('podman', ['image', 'exists', BUSYBOX_IMAGE]).then(() => true, () => false);
  if (exists) return BUSYBOX_IMAGE;
  const dir = await mkdtemp(path.join(tmpdir(), 'furrow-busybox-'));
  const root = path.join(dir, 'rootfs');
  try {
    await Promise.all(['bin', 'etc', 'tmp'].map((d) => mkdir(path.join(root, d), { recursive: true })));
    await chmod(path.join(root, 'tmp'), 0o1777);
    await copyFile(BUSYBOX, path.join(root, 'bin/busybox')).catch((err: Error) => {
      throw new Error(`${BUSYBOX} is missing (${err.message}); run scripts/install-host-packages.sh`);
    });
    const applets = (await run(BUSYBOX, ['--list'])).stdout.split('\n').filter((a) => a !== '' && a !== 'busybox');
    await Promise.all(applets.map((a) => symlink('busybox', path.join(root, 'bin', a))));
    await writeFile(path.join(root, 'etc/os-release'), `${BUSYBOX_MARKER}\n`);
    await writeFile(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    await writeFile(path.join(root, 'etc/group'), 'root:x:0:\n');
    const tarball = path.join(dir, 'rootfs.tar');
    await run('tar', ['-C', root, '--owner=0', '--group=0', '-cf', tarball, '.']);
    await run('podman', ['import', '--quiet', tarball, BUSYBOX_IMAGE]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return BUSYBOX_IMAGE;
}
