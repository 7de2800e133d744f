import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform, finished, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AppError } from '../app-error.js';

/** A size limit, and how to say which one it is and which setting raises it. */
export interface ArtifactLimit {
  bytes: number;
  describe: string;
}

/** An upload in its temporary file: `commit` moves it into place, `discard` removes it wherever it is. */
export interface ReceivedArtifact {
  id: string;
  /** Path relative to the storage directory; rows of several runs may share it (re-runs). */
  storageKey: string;
  size: number;
  sha256: string;
  commit(): Promise<void>;
  discard(): Promise<void>;
}

const mib = (bytes: number) => `${Number((bytes / (1024 * 1024)).toFixed(1))} MiB`;

export const artifactTooLarge = (limit: ArtifactLimit) => new AppError('artifact_too_large', `The artifact is larger than ${limit.describe}.`);

/**
 * Artifact files under one directory, as `<runId>/<artifactId>.tar.gz`. Files are never deleted
 * with their rows: a re-run's rows share their original's files.
 */
export class ArtifactStorage {
  /** The limit of a single artifact. */
  readonly artifactLimit: ArtifactLimit;

  constructor(
    readonly dir: string,
    private readonly limits: { maxBytes: number; runMaxBytes: number },
  ) {
    this.artifactLimit = { bytes: limits.maxBytes, describe: `the artifact limit of ${mib(limits.maxBytes)} (FURROW_ARTIFACT_MAX_MB raises it)` };
  }

  /** The tighter of the artifact limit and what is left of the run's, given what its artifacts use. */
  limitFor(usedByRun: number): ArtifactLimit {
    const left = Math.max(0, this.limits.runMaxBytes - usedByRun);
    if (left >= this.limits.maxBytes) return this.artifactLimit;
    return { bytes: left, describe: `the ${mib(left)} left of the run's artifact limit of ${mib(this.limits.runMaxBytes)} (FURROW_ARTIFACT_RUN_MAX_MB raises it)` };
  }

  assertFits(usedByRun: number, size: number): void {
    const limit = this.limitFor(usedByRun);
    if (size > limit.bytes) throw artifactTooLarge(limit);
  }

  /**
   * Streams `body` into a temporary file beside its final place, hashing and counting as it goes.
   * Past the limit it stops reading, removes the file and throws `artifact_too_large`; the body is
   * left unread and open, so that the answer still reaches the client.
   */
  async receive(runId: string, body: Readable, usedByRun: number): Promise<ReceivedArtifact> {
    const limit = this.limitFor(usedByRun);
    const id = randomUUID();
    const storageKey = `${runId}/${id}.tar.gz`;
    const file = this.pathOf(storageKey);
    const temp = path.join(path.dirname(file), `.${id}.partial`);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        size += chunk.length;
        if (size > limit.bytes) return callback(artifactTooLarge(limit));
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    // Piped rather than part of the pipeline, whose failure would destroy the request's socket.
    const stopWatching = finished(body, (err) => {
      if (err) meter.destroy(new AppError('bad_request', 'The upload ended before the whole artifact arrived.'));
    });
    body.pipe(meter);
    try {
      await pipeline(meter, createWriteStream(temp, { flags: 'wx', mode: 0o600 }));
    } catch (err) {
      body.unpipe(meter);
      await rm(temp, { force: true });
      throw err;
    } finally {
      stopWatching();
    }
    return {
      id,
      storageKey,
      size,
      sha256: hash.digest('hex'),
      commit: () => rename(temp, file),
      discard: async () => {
        await Promise.all([rm(temp, { force: true }), rm(file, { force: true })]);
      },
    };
  }

  /** The stored file as a stream; opened before it is returned, so a missing file fails early. */
  async read(storageKey: string): Promise<Readable> {
    const handle = await open(this.pathOf(storageKey)).catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? new AppError('not_found', 'The artifact’s file is missing from the server’s storage.') : err;
    });
    return handle.createReadStream();
  }

  private pathOf(storageKey: string): string {
    return path.join(this.dir, storageKey);
  }
}
