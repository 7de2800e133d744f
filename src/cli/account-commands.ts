import { createApiToken, createUser, findUserByEmail } from '../server/store/account-store.js';
import { parseFlags } from './parse-flags.js';
import { UsageError } from './usage-error.js';
import { withDatabase } from './with-database.js';

export const userHelp = `Usage: furrow user create --email EMAIL --password-stdin [--admin]

Creates a user; the password is read from standard input (first line). --admin makes an instance
admin. Works whether or not the server runs, on DATABASE_URL or on the database that "furrow start"
(or "furrow migrate") made in FURROW_DATA_DIR; it never makes one.`;

export const tokenHelp = `Usage: furrow token create --email EMAIL --name NAME

Creates an API token for the user and prints only the token, once, on standard output. Use it as
"Authorization: Bearer TOKEN". Works whether or not the server runs, on DATABASE_URL or on the
database that "furrow start" (or "furrow migrate") made in FURROW_DATA_DIR; it never makes one.`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

export async function userCommand(args: string[]): Promise<number> {
  const { positionals, values } = parseFlags(args, { email: { type: 'string' }, 'password-stdin': { type: 'boolean' }, admin: { type: 'boolean' } });
  if (positionals[0] !== 'create') throw new UsageError(userHelp);
  if (!values.email || !/^[^\s@]+@[^\s@]+$/.test(values.email)) throw new UsageError('--email must be an email address');
  if (!values['password-stdin']) throw new UsageError('--password-stdin is required: pass the password on standard input');
  const password = await readStdin();
  if (password.length < 8) throw new UsageError('the password must have at least 8 characters');
  const email = values.email;
  return withDatabase(async ({ db }) => {
    if (await findUserByEmail(db, email)) throw new UsageError(`a user with email ${email} already exists`);
    const user = await createUser(db, email, password, !!values.admin);
    process.stdout.write(`${user.id}\n`);
    return 0;
  });
}

export async function tokenCommand(args: string[]): Promise<number> {
  const { positionals, values } = parseFlags(args, { email: { type: 'string' }, name: { type: 'string' } });
  if (positionals[0] !== 'create') throw new UsageError(tokenHelp);
  if (!values.email) throw new UsageError('--email is required');
  if (!values.name) throw new UsageError('--name is required');
  const { email, name } = values;
  return withDatabase(async ({ db }) => {
    const user = await findUserByEmail(db, email);
    if (!user) throw new UsageError(`no user has the email ${email}`);
    const exists = await db.selectFrom('api_tokens').select('id').where('user_id', '=', user.id).where('name', '=', name).executeTakeFirst();
    if (exists) throw new UsageError(`${email} already has a token named ${name}`);
    const { token } = await createApiToken(db, user.id, name);
    process.stdout.write(`${token}\n`);
    return 0;
  });
}
