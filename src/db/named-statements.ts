import { createHash } from 'node:crypto';
import type pg from 'pg';

/**
 * How many distinct statement texts get a name (and so a server-side prepared statement on each
 * connection that runs them). The hot paths are among the first seen; a text made of a list of
 * variable length may take many more, and those run unnamed once the budget is spent.
 */
const NAMED_TEXTS = 500;

/**
 * A pool for Kysely whose clients run parameterised statements as named (prepared) ones:
 * PostgreSQL then parses each text once per connection and keeps its plan, where an unnamed
 * statement is parsed and planned on every execution (about half of the database's time per
 * statement on the run path, measured with log_min_duration_statement).
 */
export function namedStatementPool(pool: pg.Pool): { connect(): Promise<pg.PoolClient>; end(): Promise<void> } {
  const names = new Map<string, string | null>();
  const nameOf = (text: string): string | null => {
    let name = names.get(text);
    if (name === undefined) {
      name = names.size < NAMED_TEXTS ? `k${createHash('sha1').update(text).digest('base64url').slice(0, 20)}` : null;
      names.set(text, name);
    }
    return name;
  };
  const wrapped = new WeakMap<pg.PoolClient, pg.PoolClient>();
  const wrap = (client: pg.PoolClient): pg.PoolClient => {
    let w = wrapped.get(client);
    if (!w) {
      w = Object.create(client, {
        query: {
          value: (text: unknown, values?: unknown[]) => {
            if (typeof text !== 'string' || !values || values.length === 0) return (client.query as (...a: unknown[]) => unknown)(text, values);
            const name = nameOf(text);
            return name ? client.query({ name, text, values }) : client.query(text, values);
          },
        },
        release: { value: (err?: Error | boolean) => client.release(err) },
      }) as pg.PoolClient;
      wrapped.set(client, w);
    }
    return w;
  };
  return {
    connect: async () => wrap(await pool.connect()),
    end: () => pool.end(),
  };
}
