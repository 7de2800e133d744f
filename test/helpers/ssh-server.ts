import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, appendFile, chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './runner-process.js';

const run = promisify(execFile);
const SSHD = '/usr/sbin/sshd';

/** A throwaway OpenSSH server on 127.0.0.1 and everything a client needs to log in to it. */
export interface SshServer {
  host: string;
  port: number;
  /** The account it lets in: a fresh unprivileged user when the tests run as root, else the tests' own. */
  user: string;
  uid: number;
  home: string;
  /** `user@127.0.0.1` */
  target: string;
  /** Private key the server accepts (mode 0600). */
  keyFile: string;
  /** A known_hosts file holding the server's host key as `[127.0.0.1]:port`. */
  knownHosts: string;
  /** A directory only the tests use (keys, config, extra files). */
  dir: string;
  /** A directory of the login user's own in `dir` (mode 0700), FURROW_SSH_WORK_DIR in `env`. */
  workDir: string;
  /** Settings that point the ssh executor at this server. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * Whether this host can run an OpenSSH server for tests (sshd and ssh installed). Where it cannot,
 * the tests are skipped with the reason printed; on CI (CI=true), whose host installs both with
 * scripts/install-host-packages.sh, that is a failure.
 */
export async function sshServerAvailable(): Promise<boolean> {
  const missing: string[] = [];
  if (!(await access(SSHD).then(() => true, () => false))) missing.push(`${SSHD} (openssh-server)`);
  if (!(await run('ssh', ['-V']).then(() => true, () => false))) missing.push('ssh (openssh-client)');
  if (missing.length === 0) return true;
  const reason = `not installed: ${missing.join(', ')}; run scripts/install-host-packages.sh as root`;
  if (process.env.CI) throw new Error(`ssh tests cannot run on this CI host: ${reason}`);
  console.warn(`skipping ssh tests: ${reason}`);
  return false;
}

/** Makes an ed25519 key pair at `file` and `file.pub`; returns the public key line. */
export async function generateKey(file: string, comment = 'furrow-test'): Promise<string> {
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
  return (await readFile(`${file}.pub`, 'utf8')).trim();
}

/** Writes a known_hosts file saying that `host:port` has the key `publicKey`. */
export async function writeKnownHosts(file: string, host: string, port: number, publicKey: string): Promise<void> {
  const [type, key] = publicKey.split(' ');
  await writeFile(file, `[${host}]:${port} ${type} ${key}\n`, { mode: 0o600 });
}

/** The login account: as root a fresh user (removed by `stop`), so that jobs do not run as root. */
async function loginAccount(): Promise<{ user: string; uid: number; gid: number; home: string; remove: () => Promise<void> }> {
  if (process.getuid!() !== 0) {
    const me = userInfo();
    return { user: me.username, uid: me.uid, gid: me.gid, home: homedir(), remove: async () => undefined };
  }
  const user = `furrow-ssh-test-${randomBytes(2).toString('hex')}`;
  const home = `/home/${user}`;
  // '*' rather than useradd's locked '!': without PAM, sshd refuses locked accounts even for keys.
  await run('useradd', ['--create-home', '--home-dir', home, '--shell', '/bin/sh', '--password', '*', '--user-group', user]);
  const [uid, gid] = await Promise.all([run('id', ['-u', user]), run('id', ['-g', user])].map((p) => p.then((r) => Number(r.stdout))));
  const remove = async () => {
    // Whatever a failed test left running as the throwaway user must not outlive it.
    for (const pid of await processesOf(uid!)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    await run('userdel', ['--force', '--remove', user]);
  };
  return { user, uid: uid!, gid: gid!, home, remove };
}

/** PIDs of the processes running as `uid`. */
async function processesOf(uid: number): Promise<number[]> {
  const found: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const status = await readFile(`/proc/${e}/status`, 'utf8').catch(() => '');
    if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) === uid) found.push(Number(e));
  }
  return found;
}

function waitUntilListening(sshd: ChildProcess, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let said = '';
    const timer = setTimeout(() => done(new Error(`sshd did not listen on port ${port} within 10 s: ${said}`)), 10_000);
    const onData = (d: Buffer) => {
      said += d.toString();
      if (said.includes(`Server listening on 127.0.0.1 port ${port}`)) done();
    };
    const onExit = (code: number | null) => done(new Error(`sshd exited with ${code}: ${said}`));
    function done(err?: Error) {
      clearTimeout(timer);
      sshd.stderr!.off('data', onData);
      sshd.off('exit', onExit);
      if (err) reject(err);
      else resolve();
    }
    sshd.stderr!.on('data', onData);
    sshd.once('exit', onExit);
  });
}

/**
 * Starts `sshd -D -e` on a free loopback port with a fresh host key, accepting one fresh client
 * key for one account (public key only: no passwords, no PAM). Stop it with `stop()`.
 */
export async function startSshServer(): Promise<SshServer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'furrow-sshd-'));
  // The login user reads authorized_keys (sshd opens it as that user), so the dir must be traversable.
  await chmod(dir, 0o711);
  const account = await loginAccount();
  try {
    const [hostKey, clientKey] = await Promise.all([generateKey(path.join(dir, 'host_ed25519'), 'furrow-test-host'), generateKey(path.join(dir, 'client_ed25519'))]);
    const authorizedKeys = path.join(dir, 'authorized_keys');
    await writeFile(authorizedKeys, `${clientKey}\n`);
    await chmod(authorizedKeys, 0o644);
    const port = await freePort();
    const knownHosts = path.join(dir, 'known_hosts');
    await writeKnownHosts(knownHosts, '127.0.0.1', port, hostKey);
    const config = path.join(dir, 'sshd_config');
    const lines = [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${path.join(dir, 'host_ed25519')}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      `AllowUsers ${account.user}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin no',
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      // The temp dir's modes are not what sshd expects of a home.
      'StrictModes no',
      'PrintMotd no',
      'X11Forwarding no',
      'MaxStartups 100:30:200',
      'LogLevel INFO',
    ];
    // OpenSSH ≥ 9.8 penalises clients that fail to log in (the tests do, on purpose); older ones
    // do not know the option.
    await writeFile(config, [...lines, 'PerSourcePenalties no', ''].join('\n'));
    if (!(await run(SSHD, ['-t', '-f', config]).then(() => true, () => false))) await writeFile(config, [...lines, ''].join('\n'));
    // sshd insists on its privilege separation directory when it runs as root.
    if (process.getuid!() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    const sshd = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    await waitUntilListening(sshd, port);
    sshd.stderr!.resume(); // keep draining its log
    const exited = new Promise<void>((r) => sshd.once('exit', () => r()));
    const target = `${account.user}@127.0.0.1`;
    const workDir = path.join(dir, 'work');
    await mkdir(workDir, { mode: 0o700 });
    await chown(workDir, account.uid, account.gid);
    return {
      host: '127.0.0.1',
      port,
      user: account.user,
      uid: account.uid,
      home: account.home,
      target,
      keyFile: path.join(dir, 'client_ed25519'),
      knownHosts,
      dir,
      workDir,
      env: {
        FURROW_SSH_TARGET: target,
        FURROW_SSH_PORT: String(port),
        FURROW_SSH_KEY_FILE: path.join(dir, 'client_ed25519'),
        FURROW_SSH_KNOWN_HOSTS: knownHosts,
        FURROW_SSH_WORK_DIR: workDir,
      },
      async stop() {
        if (sshd.exitCode === null && sshd.signalCode === null) {
          sshd.kill('SIGTERM');
          await exited;
        }
        await account.remove();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await account.remove().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Lets `publicKey` (one OpenSSH line) log in as the server's user as well. */
export async function authorizeKey(server: SshServer, publicKey: string): Promise<void> {
  await appendFile(path.join(server.dir, 'authorized_keys'), `${publicKey.trim()}\n`);
}

/** Stops `publicKey` from logging in: its line leaves authorized_keys. */
export async function revokeKey(server: SshServer, publicKey: string): Promise<void> {
  const file = path.join(server.dir, 'authorized_keys');
  const blob = publicKey.trim().split(' ')[1];
  const kept = (await readFile(file, 'utf8')).split('\n').filter((line) => line && line.split(' ')[1] !== blob);
  await writeFile(file, kept.map((l) => `${l}\n`).join(''));
}
