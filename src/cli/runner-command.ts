import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, type Config } from '../config/load-config.js';
import type { SettingName } from '../config/config-schema.js';
import { PROTOCOL_VERSION } from '../protocol/messages.js';
import { FURROW_VERSION } from '../protocol/version.js';
import { createExecutor } from '../runner/executors/create-executor.js';
import { ensureSlotUsersWhenRoot } from '../runner/job-user.js';
import { RemoteChannel } from '../runner/remote-channel.js';
import { RunnerAgent } from '../runner/runner-agent.js';
import { UUID } from '../server/store/access-store.js';
import { createRunnerToken, listRunners } from '../server/store/runner-store.js';
import { createLogger } from './create-logger.js';
import { UsageError } from './usage-error.js';
import { withDatabase } from './with-database.js';

export const runnerHelp = `Usage:
  furrow runner [--url URL] [--token TOKEN] [--name N] [--labels a,b] [--capacity N]
                [--executor shell|bwrap|podman|ssh] [--work-dir DIR] [--transport auto|websocket|http]
  furrow runner list
  furrow runner token create [--organization ID] [--description TEXT]

The first form runs a runner: it connects out to the server at URL, takes jobs whose labels it
has, runs up to N at once with the executor, and reconnects by itself when the connection drops.
The first start registers with TOKEN (a registration token) and keeps the runner's own credential
in WORK_DIR/credential.json (mode 0600); later starts use that credential. SIGINT/SIGTERM drain:
no new jobs, running ones get FURROW_SHUTDOWN_GRACE_SECONDS to finish, the rest are canceled.
Each flag is also a setting (FURROW_RUNNER_URL, _TOKEN, _NAME, _LABELS, _CAPACITY, _EXECUTOR,
_WORK_DIR, _TRANSPORT); flags win.

"list" shows every runner: online or offline, paused, last seen, version, labels, executor,
capacity and running jobs. "token create" prints a new registration token: instance-wide, or for
one organization's projects with --organization. Both work on this host's database, like
"furrow user".`;

const FLAGS: Record<string, SettingName> = {
  url: 'FURROW_RUNNER_URL',
  token: 'FURROW_RUNNER_TOKEN',
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
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...Object.fromEntries(Object.keys(FLAGS).map((f) => [f, { type: 'string' as const }])),
      organization: { type: 'string' },
      description: { type: 'string' },
    },
  });
  if (positionals[0] === 'list') return listCommand();
  if (positionals[0] === 'token' && positionals[1] === 'create') return tokenCreate(values.organization, values.description);
  if (positionals.length > 0) throw new UsageError(runnerHelp);
  const overrides: Partial<Record<SettingName, string>> = {};
  for (const [flag, setting] of Object.entries(FLAGS)) {
    const v = (values as Record<string, string | undefined>)[flag];
    if (v !== undefined) overrides[setting] = v;
  }
  return runRunner(loadConfig(undefined, overrides));
}

/** The runner's credential: the saved one for this URL, or a new one from registering with the token. */
async function credentialFor(config: Config, log: (msg: string) => void): Promise<SavedCredential> {
  const { url, token, workDir, name, labels, capacity } = config.runner;
  const file = path.join(workDir, 'credential.json');
  const saved = await readFile(file, 'utf8').then((t) => JSON.parse(t) as SavedCredential, () => undefined);
  if (saved && saved.url === url) return saved;
  if (!token) throw new UsageError(`no credential in ${file} for ${url}: pass --token (a registration token) to register this runner`);
  const res = await fetch(`${url!.replace(/\/$/, '')}/api/v1/runners/register`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ version: PROTOCOL_VERSION, name, labels, capacity, executor: config.executor.kind, agentVersion: FURROW_VERSION }),
  });
  const body = (await res.json().catch(() => ({}))) as { id?: string; name?: string; credential?: string; message?: string };
  if (res.status !== 201 || !body.credential) throw new Error(`registration refused (HTTP ${res.status}): ${body.message ?? 'no credential in the answer'}`);
  const credential: SavedCredential = { url: url!, runnerId: body.id!, name: body.name!, credential: body.credential };
  await writeFile(file, `${JSON.stringify(credential, null, 2)}\n`, { mode: 0o600 });
  log(`registered as runner ${credential.name} (${credential.runnerId}); credential saved in ${file}`);
  return credential;
}

async function runRunner(config: Config): Promise<number> {
  if (!config.runner.url) throw new UsageError('--url (or FURROW_RUNNER_URL) is required: the server to connect to');
  if (!/^https?:\/\//.test(config.runner.url)) throw new UsageError(`--url must start with http:// or https://, got "${config.runner.url}"`);
  const logger = createLogger(config.logLevel, 'stderr');
  // The job users first: executors probe as the first one.
  await ensureSlotUsersWhenRoot(config.executor.jobUser, config.runner.capacity, (level, msg) => logger[level](msg));
  const executor = createExecutor(config.executor);
  const probe = await executor.probe();
  if (!probe.ok) throw new Error(`the ${executor.name} executor cannot run here: ${probe.detail}`);
  await mkdir(config.runner.workDir, { recursive: true });
  await chmod(config.runner.workDir, 0o711);
  const saved = await credentialFor(config, (msg) => logger.info(msg));
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
  await agent.start();
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

async function listCommand(): Promise<number> {
  return withDatabase(async ({ db }) => {
    const runners = await listRunners(db, null);
    const rows = runners.map((r) => [
      r.name,
      r.id,
      r.paused ? 'paused' : r.online ? 'online' : 'offline',
      r.lastSeenAt ? new Date(r.lastSeenAt).toISOString() : 'never',
      r.version || '-',
      r.labels.join(',') || '-',
      r.executor,
      `${r.runningJobs}/${r.capacity}`,
      r.organizationId ?? 'instance',
    ]);
    const header = ['NAME', 'ID', 'STATE', 'LAST SEEN', 'VERSION', 'LABELS', 'EXECUTOR', 'JOBS', 'SCOPE'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    for (const line of [header, ...rows]) process.stdout.write(`${line.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`);
    return 0;
  });
}

async function tokenCreate(organizationId: string | undefined, description: string | undefined): Promise<number> {
  return withDatabase(async ({ db }) => {
    if (organizationId) {
      const org = UUID.test(organizationId) ? await db.selectFrom('organizations').select('id').where('id', '=', organizationId).executeTakeFirst() : undefined;
      if (!org) throw new UsageError(`no organization has the id ${organizationId}`);
    }
    const token = await createRunnerToken(db, { organizationId: organizationId ?? null, description: description ?? '', actorUserId: null });
    process.stdout.write(`${token.token}\n`);
    return 0;
  });
}
