import { execFile } from 'node:child_process';
import { access, constants, mkdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { loadConfig } from '../config/load-config.js';
import { openDatabase } from '../db/database.js';
import { pendingMigrations } from '../db/migrate.js';
import { reachDatabase } from './reach-database.js';

const run = promisify(execFile);

export const doctorHelp = `Usage: furrow doctor

Checks what Furrow needs on this host and prints one line per check: Node.js version, the
database (reachable, migrations), the data dir's permissions, and which executors can run jobs.
Exits 1 when a required check fails.`;

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  required: boolean;
}

async function check(name: string, required: boolean, fn: () => Promise<string>): Promise<Check> {
  try {
    return { name, ok: true, detail: await fn(), required };
  } catch (err) {
    return { name, ok: false, detail: (err as Error).message.split('\n')[0]!, required };
  }
}

export async function doctorCommand(): Promise<number> {
  const config = loadConfig();
  const checks: Check[] = [];
  checks.push(
    await check('node', true, async () => {
      const major = Number(process.versions.node.split('.')[0]);
      if (major < 20) throw new Error(`Node.js ${process.versions.node} is too old; Furrow needs 20 or newer`);
      return `Node.js ${process.versions.node}`;
    }),
  );
  checks.push(
    await check('data dir', true, async () => {
      await mkdir(config.dataDir, { recursive: true });
      await access(config.dataDir, constants.R_OK | constants.W_OK | constants.X_OK);
      return `${config.dataDir} is writable`;
    }),
  );
  checks.push(
    await check('database', true, async () => {
      const reached = await reachDatabase(config, () => undefined);
      const database = openDatabase(reached.url, 1);
      try {
        const { rows } = await database.pool.query<{ v: string }>("SELECT current_setting('server_version') AS v");
        const pending = await pendingMigrations(database.pool);
        const where = reached.embedded ? 'embedded' : 'DATABASE_URL';
        return `PostgreSQL ${rows[0]?.v} (${where}); ${pending.length ? `pending migrations: ${pending.join(', ')}` : 'migrations applied'}`;
      } finally {
        await database.close();
        await reached.stop();
      }
    }),
  );
  checks.push(
    await check('executor shell', true, async () => {
      const { stdout } = await run('bash', ['--version']);
      return `available (${stdout.split('\n')[0]})`;
    }),
  );
  for (const c of checks) process.stdout.write(`${c.ok ? 'ok  ' : c.required ? 'FAIL' : 'warn'}  ${c.name.padEnd(16)} ${c.detail}\n`);
  return checks.some((c) => !c.ok && c.required) ? 1 : 0;
}
