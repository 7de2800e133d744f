import type { Db } from '../db/database.js';
import { secretKeyFit, type SecretKeyFit } from '../domain/secret-key-fit.js';
import { openDeployKey } from '../server/keys/deploy-key-box.js';
import type { SecretBox } from '../server/secrets/secret-box.js';
import { canOpenSecret } from '../server/store/secret-store.js';

export interface KeyedRepository {
  id: string;
  name: string;
  project: string;
  /** `missing`: no deploy key; `unreadable`: one the secret key does not open. */
  key: 'ok' | 'missing' | 'unreadable';
}

export interface SealedSecret {
  /** The project's name, with the environment's in parentheses. */
  project: string;
  name: string;
  kind: string;
  readable: boolean;
}

/** Every sealed value in the database (deploy keys and secrets), and whether `box` opens it. */
export interface SealedValues {
  repositories: KeyedRepository[];
  secrets: SealedSecret[];
  /** How many values are sealed, and how many of them the box opens. */
  sealed: number;
  opened: number;
  fit: SecretKeyFit;
}

export async function readSealedValues(db: Db, box: SecretBox | undefined): Promise<SealedValues> {
  const repos = await db
    .selectFrom('repositories as r')
    .innerJoin('projects as p', 'p.id', 'r.project_id')
    .select(['r.id', 'r.name', 'r.private_key', 'p.name as project'])
    .orderBy('p.name')
    .orderBy('r.name')
    .execute();
  const secretRows = await db
    .selectFrom('secrets as s')
    .innerJoin('projects as p', 'p.id', 's.project_id')
    .leftJoin('environments as e', 'e.id', 's.environment_id')
    .select(['s.id', 's.name', 's.kind', 's.value', 'p.name as project', 'e.name as environment'])
    .orderBy('p.name')
    .orderBy('s.name')
    .execute();
  const repositories = repos.map((r): KeyedRepository => {
    const key = !r.private_key ? null : box ? openDeployKey(box, r) : 'unreadable';
    return { id: r.id, name: r.name, project: r.project, key: key === null ? 'missing' : key === 'unreadable' ? 'unreadable' : 'ok' };
  });
  const secrets = secretRows.map((s) => ({
    project: s.environment ? `${s.project} (${s.environment})` : s.project,
    name: s.name,
    kind: s.kind,
    readable: !!box && canOpenSecret(box, s),
  }));
  const sealed = repositories.filter((r) => r.key !== 'missing').length + secrets.length;
  const opened = repositories.filter((r) => r.key === 'ok').length + secrets.filter((s) => s.readable).length;
  return { repositories, secrets, sealed, opened, fit: secretKeyFit(sealed, opened) };
}
