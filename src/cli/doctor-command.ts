import { access, constants, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { SETTINGS } from '../config/config-schema.js';
import { loadConfig, type Config } from '../config/load-config.js';
import { openDatabase, type Db } from '../db/database.js';
import { SecretBox } from '../server/secrets/secret-box.js';
import { pendingMigrations } from '../db/migrate.js';
import { describeCgroups, detectCgroups } from '../runner/cgroups.js';
import { createExecutor } from '../runner/executors/create-executor.js';
import { JOB_PATH } from '../runner/executors/spawn-step.js';
import { assertReachable, ensureJobUser, findUseradd, lookupUser, runsAsRoot, slotUserNames } from '../runner/job-user.js';
import { parseFlags } from './parse-flags.js';
import { UsageError } from './usage-error.js';
import { peekDatabase } from './reach-database.js';
import { readSealedValues } from './sealed-values.js';
import { secretKeySource } from './keys-command.js';

export const doctorHelp = `Usage: furrow doctor [--fix]

Checks what Furrow needs on this host and prints one line per check: Node.js version, the data
dir, the database (reachable, migrations), the secret key (fails when values are sealed and it
opens none of them: almost certainly the wrong key), every executor (shell, bwrap, podman, ssh) with what
its probe found, the job users (one per job slot, FURROW_JOB_USER-0 to -N, when the runner is
root; without root there are none and concurrent jobs share the runner's user), and cgroups
(version, writable controllers, the configured limits). Only the configured executor
(FURROW_RUNNER_EXECUTOR) is required; the others are warnings. Exits 1 when a required check fails.
Without --fix it changes nothing: it writes no file and does not start an embedded PostgreSQL that
no process runs (the database is then a warning).

  --fix   first repairs what it can and prints what it did: creates the data dir and, when run
          as root, the missing job users.`;

type Status = 'ok' | 'warn' | 'FAIL';

interface Check {
  name: string;
  status: Status;
  detail: string;
}

/** Runs `fn`; its result is an ok line, a thrown error a FAIL line (`required`) or a warning. */
async function check(name: string, required: boolean, fn: () => Promise<string>): Promise<Check> {
  try {
    return { name, status: 'ok', detail: await fn() };
  } catch (err) {
    return { name, status: required ? 'FAIL' : 'warn', detail: (err as Error).message.split('\n')[0]! };
  }
}

const exists = (p: string) => access(p).then(() => true, () => false);

/** What `--fix` repairs; returns one line per thing it did or failed to do. */
async function fix(config: Config): Promise<string[]> {
  const done: string[] = [];
  const attempt = async (what: string, fn: () => Promise<string | undefined>) => {
    const line = await fn().catch((err: Error) => `could not fix: ${err.message.split('\n')[0]}`);
    if (line) done.push(`${what}: ${line}`);
  };
  await attempt('data dir', async () => {
    if (await exists(config.dataDir)) return undefined;
    await mkdir(config.dataDir, { recursive: true });
    return `created ${config.dataDir}`;
  });
  if (runsAsRoot()) {
    await attempt('job users', async () => {
      const created: string[] = [];
      for (const name of slotUserNames(config.executor.jobUser, slotCount(config))) {
        const { created: made, user } = await ensureJobUser(name);
        if (made) created.push(`${user.name} (uid ${user.uid}, gid ${user.gid})`);
      }
      return created.length > 0 ? `created ${created.join(', ')}` : undefined;
    });
  }
  return done;
}

async function dataDirCheck(dir: string): Promise<string> {
  if (await exists(dir)) {
    await access(dir, constants.R_OK | constants.W_OK | constants.X_OK).catch(() => Promise.reject(new Error(`${dir} is not readable and writable by this user`)));
    return `${dir} is writable`;
  }
  let parent = path.dirname(dir);
  while (!(await exists(parent))) parent = path.dirname(parent);
  await access(parent, constants.W_OK | constants.X_OK).catch(() => Promise.reject(new Error(`${dir} does not exist and ${parent} is not writable by this user`)));
  return `${dir} does not exist yet; furrow start creates it ("furrow doctor --fix" does now)`;
}

/** How many job slots this host's runners have: the larger of `furrow start`'s and `furrow runner`'s capacity. */
function slotCount(config: Config): number {
  return Math.max(config.localRunnerCapacity, config.runner.capacity);
}

/** Whether `program` is on the jobs' PATH. */
async function onPath(program: string): Promise<boolean> {
  for (const dir of JOB_PATH.split(':')) if (await access(path.join(dir, program), constants.X_OK).then(() => true, () => false)) return true;
  return false;
}

/**
 * The job users, one per slot: needed only when root; each must exist (or be creatable), be
 * unprivileged, have a uid of its own and reach the work dirs; setpriv and pkill must be there.
 */
async function jobUsersCheck(config: Config): Promise<Check> {
  const names = slotUserNames(config.executor.jobUser, slotCount(config));
  const pattern = `${config.executor.jobUser}-N`;
  if (!runsAsRoot()) {
    return { name: 'job users', status: 'warn', detail: `none: not run as root, so jobs run as this user and concurrent jobs are not isolated from each other (as root, slot N's jobs run as ${pattern})` };
  }
  const users = await Promise.all(names.map(lookupUser));
  const missing = names.filter((_, i) => !users[i]);
  if (missing.length > 0) {
    return (await findUseradd())
      ? { name: 'job users', status: 'warn', detail: `${missing.join(', ')} do not exist; the runner creates them when it starts ("furrow doctor --fix" does now)` }
      : { name: 'job users', status: 'FAIL', detail: `${missing.join(', ')} do not exist and this host has no useradd; create the users by hand` };
  }
  return check('job users', true, async () => {
    const found = users.map((u) => u!);
    const root = found.find((u) => u.uid === 0);
    if (root) throw new Error(`${root.name} has uid 0; jobs never run as root: set FURROW_JOB_USER to the base name of unprivileged users`);
    if (new Set(found.map((u) => u.uid)).size !== found.length) throw new Error(`${names.join(', ')} must have distinct uids, or concurrent jobs share one`);
    for (const program of ['setpriv', 'pkill']) if (!(await onPath(program))) throw new Error(`${program} is missing (util-linux, procps): install it with scripts/install-host-packages.sh`);
    for (const user of found) for (const dir of new Set([config.workDir, config.runner.workDir])) await assertReachable(dir, user);
    return `one per job slot: ${found.map((u) => `${u.name} (uid ${u.uid})`).join(', ')}; they reach the work dirs`;
  });
}

/** Each executor's probe: the configured one must work, the others are for information. */
async function executorChecks(config: Config): Promise<Check[]> {
  return Promise.all(
    SETTINGS.FURROW_RUNNER_EXECUTOR.values.map((kind) => {
      const configured = kind === config.executor.kind;
      return check(`executor ${kind}`, configured, async () => {
        const probe = await createExecutor({ ...config.executor, kind }).probe();
        const detail = configured ? `configured: ${probe.detail}` : probe.detail;
        if (!probe.ok) throw new Error(detail);
        return detail;
      });
    }),
  );
}

/**
 * The database (reachable, migrations) and whether the secret key opens what is sealed in it.
 * Looks only: an embedded cluster that no process runs is not started.
 */
async function databaseChecks(config: Config): Promise<Check[]> {
  const peeked = await peekDatabase(config);
  if ('reason' in peeked) {
    return [
      { name: 'database', status: 'warn', detail: peeked.reason },
      { name: 'secret key', status: 'warn', detail: 'not checked: the database is not reachable now' },
    ];
  }
  let database: ReturnType<typeof openDatabase> | undefined;
  const dbCheck = await check('database', true, async () => {
    database = openDatabase(peeked.url, 1);
    const { rows } = await database.pool.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    const pending = await pendingMigrations(database.pool);
    const where = peeked.embedded ? 'embedded' : 'DATABASE_URL';
    return `PostgreSQL ${rows[0]?.v} (${where}); ${pending.length ? `pending migrations: ${pending.join(', ')}` : 'migrations applied'}`;
  });
  try {
    const keyCheck =
      dbCheck.status === 'ok' && database && !dbCheck.detail.includes('pending migrations')
        ? await check('secret key', true, () => secretKeyCheck(config, database!.db))
        : { name: 'secret key', status: 'warn' as const, detail: 'not checked: the database is not reachable or not migrated' };
    return [dbCheck, keyCheck];
  } finally {
    await database?.close();
  }
}

/** Fails when values are sealed and the secret key opens none of them: the wrong key. */
async function secretKeyCheck(config: Config, db: Db): Promise<string> {
  const box = await SecretBox.find(config);
  const source = secretKeySource(config);
  const values = await readSealedValues(db, box);
  const what = `${values.sealed} sealed deploy keys and secrets`;
  switch (values.fit) {
    case 'nothing-sealed':
      return box ? `${source}; nothing sealed yet` : `${source} does not exist yet; the server makes it at its first start`;
    case 'opens-all':
      return `${source} opens all ${what}`;
    case 'opens-some':
      return `${source} opens ${values.opened} of ${what}; "furrow keys rekey-missing" lists and replaces the others`;
    case 'opens-none':
      throw new Error(
        box
          ? `${source} opens none of the ${what}: almost certainly the wrong key (restore the right one; "furrow keys rekey-missing --force" would replace every deploy key)`
          : `${source} does not exist, and ${what} need it: restore the key they were sealed with`,
      );
  }
}

async function cgroupsCheck(config: Config): Promise<Check> {
  const { enforced, detail } = describeCgroups(await detectCgroups(), config.executor.limits);
  return { name: 'cgroups', status: enforced ? 'ok' : 'warn', detail };
}

export async function doctorCommand(args: string[]): Promise<number> {
  const { positionals, values } = parseFlags(args, { fix: { type: 'boolean' } });
  if (positionals.length > 0) throw new UsageError(doctorHelp);
  const config = loadConfig();
  if (values.fix) {
    const done = await fix(config);
    for (const line of done.length > 0 ? done : ['nothing to fix']) process.stdout.write(`fix   ${line}\n`);
  }
  const checks: Check[] = [];
  checks.push(
    await check('node', true, async () => {
      const major = Number(process.versions.node.split('.')[0]);
      if (major < 20) throw new Error(`Node.js ${process.versions.node} is too old; Furrow needs 20 or newer`);
      return `Node.js ${process.versions.node}`;
    }),
  );
  checks.push(await check('data dir', true, () => dataDirCheck(config.dataDir)));
  checks.push(...(await databaseChecks(config)));
  checks.push(...(await executorChecks(config)), await jobUsersCheck(config), await cgroupsCheck(config));
  for (const c of checks) process.stdout.write(`${c.status.padEnd(4)}  ${c.name.padEnd(16)} ${c.detail}\n`);
  return checks.some((c) => c.status === 'FAIL') ? 1 : 0;
}
