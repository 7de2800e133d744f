import { sql } from 'kysely';
import type { Readable } from 'node:stream';
import type { Db, Tx } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import { AppError } from '../app-error.js';
import type { ArtifactStorage } from '../artifacts/artifact-storage.js';
import { recordActivity } from './activity-store.js';
import type { JobIdentity } from './job-token.js';

export interface Artifact {
  id: string;
  runId: string;
  /** The job that uploaded it (for a re-run's copy, the original run's job); null once that job is gone. */
  jobId: string | null;
  name: string;
  /** Bytes of the tar.gz. */
  size: number;
  /** Bytes of the tar inside it, which the limits count. */
  unpackedSize: number;
  sha256: string;
  createdAt: Date;
}

const columns = ['id', 'run_id as runId', 'job_id as jobId', 'name', 'size', 'unpacked_size as unpackedSize', 'sha256', 'created_at as createdAt'] as const;

const alreadyThere = (name: string) => new AppError('artifact_exists', `The run already has an artifact named "${name}"; names are unique within a run.`);

export function listArtifacts(db: Db, runId: string): Promise<Artifact[]> {
  return db.selectFrom('artifacts').select(columns).where('run_id', '=', runId).orderBy('created_at').orderBy('name').execute();
}

export function findArtifact(db: Db, runId: string, name: string): Promise<(Artifact & { storageKey: string }) | undefined> {
  return db.selectFrom('artifacts').select([...columns, 'storage_key as storageKey']).where('run_id', '=', runId).where('name', '=', name).executeTakeFirst();
}

async function bytesUsedBy(db: Db, runId: string): Promise<number> {
  const row = await db.selectFrom('artifacts').select(sql<number>`coalesce(sum(unpacked_size), 0)::bigint`.as('used')).where('run_id', '=', runId).executeTakeFirstOrThrow();
  return row.used;
}

/**
 * Stores the artifact `name` of the job's run from `body` (a tar.gz stream). The file is moved into
 * place inside the transaction that records its row and the `artifact.uploaded` activity, and
 * removed again when that transaction fails: a refused upload leaves neither row nor file.
 */
export async function uploadArtifact(db: Db, storage: ArtifactStorage, job: JobIdentity, name: string, body: Readable): Promise<Artifact> {
  // Checked before reading, to spare the upload; the insert below settles races.
  if (await findArtifact(db, job.runId, name)) throw alreadyThere(name);
  const received = await storage.receive(job.runId, body, await bytesUsedBy(db, job.runId));
  try {
    return await inTransaction(db, async (tx) => {
      // Uploads of one run take turns here, so that together they stay within the run's limit.
      await tx.selectFrom('runs').select('id').where('id', '=', job.runId).forNoKeyUpdate().executeTakeFirstOrThrow();
      storage.assertFits(await bytesUsedBy(tx, job.runId), received.unpackedSize);
      const artifact = await tx
        .insertInto('artifacts')
        .values({
          id: received.id,
          run_id: job.runId,
          job_id: job.jobId,
          name,
          size: received.size,
          unpacked_size: received.unpackedSize,
          sha256: received.sha256,
          storage_key: received.storageKey,
        })
        .onConflict((oc) => oc.columns(['run_id', 'name']).doNothing())
        .returning(columns)
        .executeTakeFirst();
      if (!artifact) throw alreadyThere(name);
      await recordActivity(tx, {
        type: 'artifact.uploaded',
        organizationId: job.organizationId,
        projectId: job.projectId,
        actorUserId: null,
        subjectType: 'artifact',
        subjectId: artifact.id,
        payload: { runId: job.runId, jobId: job.jobId, name, size: received.size, unpackedSize: received.unpackedSize, sha256: received.sha256 },
      });
      await received.commit();
      return artifact;
    });
  } catch (err) {
    await received.discard();
    throw err;
  }
}

/**
 * Gives the run `toRunId` (a re-run) the artifacts of `fromRunId`, or only those uploaded by
 * `jobIds` (the jobs the re-run keeps). The copies keep their job and time and share the original
 * files, which is why deleting rows never deletes files. Returns how many were copied.
 */
export async function copyArtifacts(tx: Tx, fromRunId: string, toRunId: string, jobIds: readonly string[]): Promise<number> {
  if (jobIds.length === 0) return 0;
  const copied = tx
    .selectFrom('artifacts')
    .select([sql<string>`${toRunId}::uuid`.as('run_id'), 'job_id', 'name', 'size', 'unpacked_size', 'sha256', 'storage_key', 'created_at'])
    .where('run_id', '=', fromRunId)
    .where('job_id', 'in', jobIds);
  const result = await tx
    .insertInto('artifacts')
    .columns(['run_id', 'job_id', 'name', 'size', 'unpacked_size', 'sha256', 'storage_key', 'created_at'])
    .expression(copied)
    .onConflict((oc) => oc.columns(['run_id', 'name']).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0);
}
