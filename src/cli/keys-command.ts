import { createInterface } from 'node:readline/promises';
import { loadConfig } from '../config/load-config.js';
import type { Db } from '../db/database.js';
import { openDeployKey } from '../server/keys/deploy-key-box.js';
import { rekeyRepository } from '../server/keys/rekey-repository.js';
import { SecretBox } from '../server/secrets/secret-box.js';
import { canOpenSecret } from '../server/store/secret-store.js';
import { migrateTaskQueue } from '../server/workers/start-workers.js';
import { createLogger } from './create-logger.js';
import { parseFlags } from './parse-flags.js';
import { UsageError } from './usage-error.js';
import { withDatabase } from './with-database.js';

export const keysHelp = `Usage: furrow keys rekey [--yes]
       furrow keys rekey-missing

rekey           gives every repository a new deploy key (of its key type). Each old key stops
                working once the forge's deploy key is replaced by the new public key, shown by
                GET /api/v1/repositories/ID. Asks first; --yes does not (and
                is required when standard input is not a terminal).
rekey-missing   only repositories whose key is missing or cannot be opened with this instance's
                secret key (FURROW_SECRET_KEY or DATA_DIR/secret.key), e.g. after the key was lost.
                Also lists secrets that cannot be opened: a person must enter those again (until
                then, every job of their project fails).

Prints each repository it rekeyed with its new fingerprint; an access check is queued for each.
Works whether or not the server runs.`;

interface KeyedRepository {
  id: string;
  name: string;
  project: string;
  private_key: Buffer | null;
}

function listRepositories(db: Db): Promise<KeyedRepository[]> {
  return db
    .selectFrom('repositories as r')
    .innerJoin('projects as p', 'p.id', 'r.project_id')
    .select(['r.id', 'r.name', 'r.private_key', 'p.name as project'])
    .orderBy('p.name')
    .orderBy('r.name')
    .execute();
}

/** Secrets whose value does not open: sealed under another secret key, or altered. */
async function unreadableSecrets(db: Db, box: SecretBox): Promise<{ project: string; name: string; kind: string }[]> {
  const rows = await db
    .selectFrom('secrets as s')
    .innerJoin('projects as p', 'p.id', 's.project_id')
    .leftJoin('environments as e', 'e.id', 's.environment_id')
    .select(['s.id', 's.name', 's.kind', 's.value', 'p.name as project', 'e.name as environment'])
    .orderBy('p.name')
    .orderBy('s.name')
    .execute();
  return rows
    .filter((s) => !canOpenSecret(box, s))
    .map((s) => ({ project: s.environment ? `${s.project} (${s.environment})` : s.project, name: s.name, kind: s.kind }));
}

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

export async function keysCommand(args: string[]): Promise<number> {
  const { positionals, values } = parseFlags(args, { yes: { type: 'boolean', short: 'y' } });
  const [action] = positionals;
  if ((action !== 'rekey' && action !== 'rekey-missing') || positionals.length > 1) throw new UsageError(keysHelp);
  const config = loadConfig();
  const secretBox = await SecretBox.load(config);
  return withDatabase(async (database) => {
    const { db } = database;
    // Rekeying queues access checks: the task queue's schema must exist even if no server ever ran.
    await migrateTaskQueue({ database, logger: createLogger('warn', 'stderr') });
    const all = await listRepositories(db);
    const missing = (r: KeyedRepository) => {
      const key = openDeployKey(secretBox, r);
      return key === null || key === 'unreadable';
    };
    const chosen = action === 'rekey' ? all : all.filter(missing);
    if (action === 'rekey' && chosen.length > 0 && !values.yes) {
      if (!process.stdin.isTTY) throw new UsageError(`would replace the deploy keys of ${chosen.length} repositories; pass --yes to do so without a terminal`);
      if (!(await confirm(`Replace the deploy keys of ${chosen.length} repositories?`))) {
        process.stdout.write('Nothing changed.\n');
        return 1;
      }
    }
    for (const r of chosen) {
      const repo = await rekeyRepository({ db, secretBox }, r.id, { type: 'repository.rekeyed', actorUserId: null });
      if (repo) process.stdout.write(`${r.project}/${r.name}\t${repo.keyFingerprint}\n`);
    }
    process.stdout.write(
      chosen.length > 0
        ? `Rekeyed ${chosen.length} repositories: add each new public key to its forge as a deploy key.\n`
        : `No repository ${action === 'rekey' ? 'exists' : 'misses its deploy key'}.\n`,
    );
    if (action === 'rekey-missing') {
      const secrets = await unreadableSecrets(db, secretBox);
      for (const s of secrets) process.stdout.write(`${s.project}: ${s.kind} secret ${s.name} cannot be opened; enter it again\n`);
    }
    return 0;
  });
}
