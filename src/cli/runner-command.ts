import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, loadConfig, type Config } from '../config/load-config.js';
import type { SettingName } from '../config/config-schema.js';
import type { Db } from '../db/database.js';
import { parseDuration } from '../domain/parse-duration.js';
import { PROTOCOL_VERSION } from '../protocol/messages.js';
import { FURROW_VERSION } from '../protocol/version.js';
import { createExecutor } from '../runner/executors/create-executor.js';
import { ensureSlotUsersWhenRoot } from '../runner/job-user.js';
import { RemoteChannel } from '../runner/remote-channel.js';
import { RunnerAgent } from '../runner/runner-agent.js';
import { UUID } from '../server/store/access-store.js';
import { AppError } from '../server/app-error.js';
import { createRunnerToken, listRunners, listRunnerTokens, revokeRunnerToken } from '../server/store/runner-store.js';
import { createLogger } from './create-logger.js';
import { describeNetworkError } from './describe-network-error.js';
import { parseFlags } from './parse-flags.js';
import { UsageError } from './usage-error.js';
import { withDatabase } from './with-database.js';

export const runnerHelp = `Usage:
  furrow runner [--url URL] [--token-file PATH | --token-stdin] [--name N] [--labels a,b] [--capacity N]
                [--executor shell|bwrap|podman|ssh] [--work-dir DIR] [--transport auto|websocket|http]
  furrow runner list
  furrow runner token create [--organization ID] [--description TEXT] [--uses N] [--expires 1h]
  furrow runner token list [--organization ID]
  furrow runner token revoke ID

The first form runs a runner: it connects out to the server at URL, takes jobs whose labels it
has, runs up to N at once with the executor, and reconnects by itself when the connection drops.
The first start registers with a registration token and keeps the runner's own credential in
WORK_DIR/credential.json (mode 0600); later starts use that credential and need no token. The
token is read from the file --token-file names (FURROW_RUNNER_TOKEN_FILE), from standard input
with --token-stdin, or from the environment variable FURROW_RUNNER_TOKEN; never from the command
line, where every process on the host could read it:
  furrow runner --url URL --token-file /etc/furrow/registration-token
  furrow runner token create | ssh build-1 furrow runner --url URL --token-stdin
SIGINT/SIGTERM drain: no new jobs, running ones get FURROW_SHUTDOWN_GRACE_SECONDS to finish, the
rest are canceled. Each flag is also a setting (FURROW_RUNNER_URL, _TOKEN_FILE, _NAME, _LABELS,
_CAPACITY, _EXECUTOR, _WORK_DIR, _TRANSPORT); flags win. A trailing slash in URL is dropped.

"list" shows every runner: online or offline, paused, last seen, version, labels, executor,
capacity and running jobs. "token create" prints a new registration token: instance-wide, or for
one organization's projects with --organization. It registers one runner, or N with --uses N,
and stops working after --expires (a number with s, m, h, d or w: 30m, 1h, 7d) if given.
"token list" shows the tokens (never their values, only their first characters) with their uses,
expiry and last use; "token revoke" stops one from registering more runners. They work on this
host's database, like "furrow user".`;

const FLAGS: Record<string, SettingName> = {
  url: 'FURROW_RUNNER_URL',
  'token-file': 'FURROW_RUNNER_TOKEN_FILE',
  name: 'FURROW_RUNNER_NAME',
  labels: 'FURROW_RUNNER_LABELS',
  capacity: 'FURROW_RUNNER_CAPACITY',
  executor: 'FURROW_RUNNER_EXECUTOR',
  'work-dir': 'FURROW_RUNNER_WORK_DIR',
  transport: 'FURROW_RUNNER_TRANSPORT',
};

interface SavedCredential {
  url: string;
  runnerId: string;
  name: string;
  credential: string;
}

export async function runnerCommand(args: string[]): Promise<number> {
  const { positionals, values } = parseFlags(args, {
    ...Object.fromEntries(Object.keys(FLAGS).map((f) => [f, { type: 'string' as const }])),
    // Accepted only to refuse it with a better message than "unknown option".
    token: { type: 'string' },
    'token-stdin': { type: 'boolean' },
    organization: { type: 'string' },
    description: { type: 'string' },
    uses: { type: 'string' },
    expires: { type: 'string' },
  });
  if (positionals[0] === 'list') return listCommand();
  if (positionals[0] === 'token' && positionals.length <= 3) {
    if (positionals[1] === 'create' && positionals.length === 2) return tokenCreate(values);
    if (positionals[1] === 'list' && positionals.length === 2) return tokenList(values.organization);
    if (positionals[1] === 'revoke' && positionals[2]) return tokenRevoke(positionals[2]);
  }
  if (positionals.length > 0) throw new UsageError(runnerHelp);
  if (values.token !== undefined) {
    throw new UsageError(
      '--token would put the registration token on the command line, where every process on this host can read it. ' +
        'Pass it with --token-file PATH, with --token-stdin, or in the environment variable FURROW_RUNNER_TOKEN.',
    );
  }
  if (values['token-stdin'] && (values as Record<string, unknown>)['token-file'] !== undefined) throw new UsageError('give --token-file or --token-stdin, not both');
  const overrides: Partial<Record<SettingName, string>> = {};
  for (const [flag, setting] of Object.entries(FLAGS)) {
    const v = (values as Record<string, string | undefined>)[flag];
    if (v !== undefined) overrides[setting] = v;
  }
  return runRunner(loadConfigNaming(overrides), values['token-stdin'] === true);
}

/**
 * The registration token, read only when the runner has to register: from standard input with
 * --token-stdin, else from FURROW_RUNNER_TOKEN_FILE (--token-file), else FURROW_RUNNER_TOKEN.
 */
async function registrationToken(config: Config, fromStdin: boolean): Promise<string | undefined> {
  const { token, tokenFile } = config.runner;
  if (fromStdin) return nonEmpty(await readStdin(), 'standard input (--token-stdin)');
  if (tokenFile === undefined) return token;
  const text = await readFile(tokenFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read the registration token from ${tokenFile}: ${err.code ?? err.message}`);
  });
  return nonEmpty(text, tokenFile);
}

function nonEmpty(text: string, source: string): string {
  const token = text.trim();
  if (!token) throw new UsageError(`no registration token in ${source}: it is empty`);
  return token;
}

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  return text;
}

/** loadConfig, whose problems with a setting given as a flag name the flag too. */
function loadConfigNaming(overrides: Partial<Record<SettingName, string>>): Config {
  try {
    return loadConfig(undefined, overrides);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const flagOf = new Map(Object.entries(FLAGS).map(([flag, setting]) => [setting, flag]));
    throw new ConfigError(
      err.problems.map((p) => {
        const setting = /^[A-Z_]+/.exec(p)?.[0] as SettingName | undefined;
        return setting && overrides[setting] !== undefined ? `--${flagOf.get(setting)} (${setting})${p.slice(setting.length)}` : p;
      }),
    );
  }
}

/** The runner's credential: the saved one for this URL, or a new one from registering with the token. */
async function credentialFor(config: Config, tokenFromStdin: boolean, log: (msg: string) => void): Promise<SavedCredential> {
  const { url, workDir, name, labels, capacity } = config.runner;
  const file = path.join(workDir, 'credential.json');
  const saved = await readFile(file, 'utf8').then((t) => JSON.parse(t) as SavedCredential, () => undefined);
  // Credentials saved before URLs were normalised may end in a slash.
  if (saved && saved.url.replace(/\/+$/, '') === url) return { ...saved, url };
  const token = await registrationToken(config, tokenFromStdin);
  if (!token) {
    throw new UsageError(`no credential in ${file} for ${url}: pass a registration token with --token-file PATH, --token-stdin or FURROW_RUNNER_TOKEN to register this runner`);
  }
  const res = await fetch(`${url}/api/v1/runners/register`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ version: PROTOCOL_VERSION, name, labels, capacity, executor: config.executor.kind, agentVersion: FURROW_VERSION }),
  }).catch((err: unknown) => {
    throw new Error(`cannot reach the server at ${url}: ${describeNetworkError(err)}`);
  });
  const body = (await res.json().catch(() => ({}))) as { id?: string; name?: string; credential?: string; message?: string };
  if (res.status !== 201 || !body.credential) {
    throw new Error(`the server at ${url} refused the registration (HTTP ${res.status}): ${body.message ?? (res.status === 201 ? 'no credential in the answer' : 'is this the Furrow server\'s URL?')}`);
  }
  const credential: SavedCredential = { url: url!, runnerId: body.id!, name: body.name!, credential: body.credential };
  await writeFile(file, `${JSON.stringify(credential, null, 2)}\n`, { mode: 0o600 });
  log(`registered as runner ${credential.name} (${credential.runnerId}); credential saved in ${file}`);
  return credential;
}

/** The server URL as the runner uses it: http(s), without a trailing slash (a base for its routes). */
function serverUrl(raw: string | undefined): string {
  if (!raw) throw new UsageError('--url (or FURROW_RUNNER_URL) is required: the server to connect to');
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (!/^https?:\/\//.test(raw) || !url) throw new UsageError(`--url (or FURROW_RUNNER_URL) must be a URL starting with http:// or https://, got "${raw}"`);
  if (url.search || url.hash) throw new UsageError(`--url (or FURROW_RUNNER_URL) must not hold a query or fragment, got "${raw}"`);
  return raw.replace(/\/+$/, '');
}

async function runRunner(loaded: Config, tokenFromStdin: boolean): Promise<number> {
  const config: Config = { ...loaded, runner: { ...loaded.runner, url: serverUrl(loaded.runner.url) } };
  const logger = createLogger(config.logLevel, 'stderr');
  // The job users first: executors probe as the first one.
  await ensureSlotUsersWhenRoot(config.executor.jobUser, config.runner.capacity, (level, msg) => logger[level](msg));
  const executor = createExecutor(config.executor);
  const probe = await executor.probe();
  if (!probe.ok) throw new Error(`the ${executor.name} executor cannot run here: ${probe.detail}`);
  await mkdir(config.runner.workDir, { recursive: true });
  await chmod(config.runner.workDir, 0o711);
  const saved = await credentialFor(config, tokenFromStdin, (msg) => logger.info(msg));
  const channel = new RemoteChannel({
    url: saved.url,
    credential: saved.credential,
    transport: config.runner.transport,
    log: (msg, extra) => logger.warn(extra ?? {}, msg),
  });
  const agent = new RunnerAgent(channel, {
    name: config.runner.name,
    labels: config.runner.labels,
    capacity: config.runner.capacity,
    workDir: config.runner.workDir,
    executor,
    version: FURROW_VERSION,
    serverUrl: saved.url,
    jobUser: config.executor.jobUser,
    log: (msg, extra) => logger.warn(extra ?? {}, msg),
  });
  await agent.start().catch((err: unknown) => {
    throw new Error(`cannot start taking jobs from the server at ${saved.url}: ${describeNetworkError(err)}`);
  });
  logger.info({ runnerId: agent.runnerId, capacity: config.runner.capacity, labels: config.runner.labels, executor: executor.name }, 'runner is taking jobs');
  process.stderr.write(`furrow runner ${saved.name} is connected to ${saved.url}\n`);

  const outcome = await new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      // A second signal does not wait for the grace period.
      const graceMs = signals > 1 ? 0 : config.shutdownGraceSeconds * 1000;
      logger.info({ signal, runningJobs: agent.activeJobs, graceSeconds: graceMs / 1000 }, 'draining');
      void agent.drain(graceMs).then(() => resolve(0));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    channel.onFatal((err) => {
      logger.error({ error: err.message }, 'the server refused this runner; stopping');
      process.stderr.write(`furrow runner: ${err.message}\n`);
      void agent.drain(0).then(() => resolve(1));
    });
  });
  channel.close();
  logger.info('runner stopped');
  return outcome;
}

/** Prints rows under a header, each column as wide as its widest cell. */
function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const line of [header, ...rows]) process.stdout.write(`${line.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`);
}

const when = (d: Date | string | null) => (d ? new Date(d).toISOString() : 'never');

async function listCommand(): Promise<number> {
  return withDatabase(async ({ db }) => {
    const runners = await listRunners(db, null);
    const rows = runners.map((r) => [
      r.name,
      r.id,
      r.paused ? 'paused' : r.online ? 'online' : 'offline',
      when(r.lastSeenAt),
      r.version || '-',
      r.labels.join(',') || '-',
      r.executor,
      `${r.runningJobs}/${r.capacity}`,
      r.organizationId ?? 'instance',
    ]);
    printTable(['NAME', 'ID', 'STATE', 'LAST SEEN', 'VERSION', 'LABELS', 'EXECUTOR', 'JOBS', 'SCOPE'], rows);
    return 0;
  });
}

/** The organization --organization names, checked to exist; undefined without the flag. */
async function organizationOf(db: Db, organizationId: string | undefined): Promise<string | undefined> {
  if (organizationId === undefined) return undefined;
  const org = UUID.test(organizationId) ? await db.selectFrom('organizations').select('id').where('id', '=', organizationId).executeTakeFirst() : undefined;
  if (!org) throw new UsageError(`no organization has the id ${organizationId}`);
  return org.id;
}

async function tokenCreate(values: { organization?: string | undefined; description?: string | undefined; uses?: string | undefined; expires?: string | undefined }): Promise<number> {
  const maxUses = values.uses === undefined ? 1 : Number(values.uses);
  if (!Number.isInteger(maxUses) || maxUses < 1 || maxUses > 10_000) throw new UsageError(`--uses must be a whole number from 1 to 10000, got "${values.uses}"`);
  const expiresInSeconds = values.expires === undefined ? undefined : parseDuration(values.expires);
  if (values.expires !== undefined && expiresInSeconds === undefined) {
    throw new UsageError(`--expires must be a number with s, m, h, d or w (30m, 1h, 7d), got "${values.expires}"`);
  }
  return withDatabase(async ({ db }) => {
    const organizationId = (await organizationOf(db, values.organization)) ?? null;
    const token = await createRunnerToken(db, { organizationId, description: values.description ?? '', actorUserId: null, maxUses, expiresInSeconds });
    process.stdout.write(`${token.token}\n`);
    return 0;
  });
}

async function tokenList(organization: string | undefined): Promise<number> {
  return withDatabase(async ({ db }) => {
    const tokens = await listRunnerTokens(db, (await organizationOf(db, organization)) ?? null);
    const rows = tokens.map((t) => [
      t.id,
      `${t.prefix || '?'}…`,
      t.state,
      `${t.uses}/${t.maxUses}`,
      t.expiresAt ? new Date(t.expiresAt).toISOString() : 'never',
      when(t.lastUsedAt),
      t.lastUsedBy?.name ?? '-',
      t.description || '-',
    ]);
    printTable(['ID', 'TOKEN', 'STATE', 'USES', 'EXPIRES', 'LAST USED', 'LAST RUNNER', 'DESCRIPTION'], rows);
    return 0;
  });
}

async function tokenRevoke(id: string): Promise<number> {
  if (!UUID.test(id)) throw new UsageError(`no registration token has the id ${id}`);
  return withDatabase(async ({ db }) => {
    await revokeRunnerToken(db, id, null).catch((err: unknown) => {
      throw err instanceof AppError && err.code === 'not_found' ? new UsageError(`no registration token has the id ${id}`) : err;
    });
    process.stdout.write(`revoked registration token ${id}\n`);
    return 0;
  });
}
