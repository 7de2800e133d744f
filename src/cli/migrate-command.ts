import { loadConfig } from '../config/load-config.js';
import { openDatabase } from '../db/database.js';
import { migrate } from '../db/migrate.js';
import { reachDatabase } from './reach-database.js';

export const migrateHelp = `Usage: furrow migrate

Applies pending database migrations (each in its own transaction) and prints their names.
\`furrow start\` does this too; use this command to migrate before rolling out new servers. Without
DATABASE_URL it makes the embedded database in FURROW_DATA_DIR when there is none.`;

export async function migrateCommand(): Promise<number> {
  const config = loadConfig();
  const reached = await reachDatabase(config, () => undefined, { create: true });
  const database = openDatabase(reached.url, 1);
  try {
    const applied = await migrate(database.pool);
    process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n');
    return 0;
  } finally {
    await database.close();
    await reached.stop();
  }
}
