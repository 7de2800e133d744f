import { createInterface } from 'node:readline/promises';
import path from 'node:path';
import type { Config } from '../config/load-config.js';
import { rekeyRepository } from '../server/keys/rekey-repository.js';
import { SecretBox } from '../server/secrets/secret-box.js';
import { migrateTaskQueue } from '../server/workers/start-workers.js';
import { createLogger } from './create-logger.js';
import { parseFlags } from './parse-flags.js';
import { readSealedValues } from './sealed-values.js';
import { UsageError } from './usage-error.js';
import { withDatabase } from './with-database.js';

export const keysHelp = `Usage: furrow keys rekey [--yes]
       furrow keys rekey-missing [--force]

rekey           gives every repository a new deploy key (of its key type). Each old key stops
                working once the forge's deploy key is replaced by the new public key, shown by
                GET /api/v1/repositories/ID. Asks first; --yes does not (and
                is required when standard input is not a terminal).
rekey-missing   only repositories whose key is missing or cannot be opened with this instance's
                secret key (FURROW_SECRET_KEY or DATA_DIR/secret.key), e.g. after the key was lost.
                Also lists secrets that cannot be opened: a person must enter those again (until
                then, every job of their project fails). Refuses when values are sealed and the
                key opens none of them (almost certainly the wrong key); --force rekeys anyway.

Prints each repository it rekeyed with its new fingerprint; an access check is queued for each.
Works whether or not the server runs (never makes a database or a secret key).`;

async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

/** The secret key this instance seals with; refuses rather than make one (see SecretBox.load). */
export async function existingSecretBox(config: Config): Promise<SecretBox> {
  const box = await SecretBox.find(config);
  if (!box) throw new UsageError(`no secret key: FURROW_SECRET_KEY is unset and ${path.join(config.dataDir, 'secret.key')} does not exist (the server makes it at its first start)`);
  return box;
}

export async function keysCommand(args: string[]): Promise<number> {
  const { positionals, values } = parseFlags(args, { yes: { type: 'boolean', short: 'y' }, force: { type: 'boolean' } });
  const [action] = positionals;
  if ((action !== 'rekey' && action !== 'rekey-missing') || positionals.length > 1) throw new UsageError(keysHelp);
  return withDatabase(async (database, config) => {
    const { db } = database;
    const secretBox = await existingSecretBox(config);
    const sealed = await readSealedValues(db, secretBox);
    if (action === 'rekey-missing' && sealed.fit === 'opens-none' && !values.force) {
      process.stderr.write(
        `furrow keys: the secret key (${secretKeySource(config)}) opens none of the ${sealed.sealed} sealed deploy keys and secrets: it is almost certainly not the key they were sealed with, so nothing was rekeyed. Use the right key, or pass --force to give every repository a new deploy key anyway.\n`,
      );
      return 1;
    }
    // Rekeying queues access checks: the task queue's schema must exist even if no server ever ran.
    await migrateTaskQueue({ database, logger: createLogger('warn', 'stderr') });
    const chosen = action === 'rekey' ? sealed.repositories : sealed.repositories.filter((r) => r.key !== 'ok');
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
      for (const s of sealed.secrets.filter((x) => !x.readable)) process.stdout.write(`${s.project}: ${s.kind} secret ${s.name} cannot be opened; enter it again\n`);
    }
    return 0;
  });
}

/** Where the secret key comes from, for messages. */
export function secretKeySource(config: Config): string {
  return config.secretKey !== undefined ? 'FURROW_SECRET_KEY' : path.join(config.dataDir, 'secret.key');
}
