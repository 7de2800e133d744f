import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform, Writable, finished, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { AppError } from '../app-error.js';
import { TarChecker, type TarSummary } from './tar-checker.js';

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
  /** Bytes of the gzip-compressed tar, as stored. */
  size: number;
  /** Bytes of the tar inside it: what the limits count. */
  unpackedSize: number;
  sha256: string;
  commit(): Promise<void>;
  discard(): Promise<void>;
}

const mib = (bytes: number) => `${Number((bytes / (1024 * 1024)).toFixed(1))} MiB`;

export const artifactTooLarge = (limit: ArtifactLimit) => new AppError('artifact_too_large', `The artifact is larger than ${limit.describe}.`);
const notGzip = () => new AppError('artifact_not_gzip', 'The upload is not gzip-compressed; send the artifact as a tar.gz archive (tar czf).');

/** zlib's errors as the API's: a stream that stops early, or one that is damaged. */
function gzipError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'Z_BUF_ERROR') return new AppError('artifact_truncated', 'The artifact’s gzip stream ends before its end: the archive was cut short.');
  if (code === 'Z_DATA_ERROR') return new AppError('artifact_corrupt', `The artifact’s gzip data is damaged (${(err as Error).message}).`);
  return err;
}

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
   * Streams `body` into a temporary file beside its final place, hashing and counting as it goes,
   * and checks it on the way as a gzip-compressed tar (see `TarChecker`), so that the limit holds
   * for the unpacked size too and a gzip bomb is stopped after its first few kilobytes. At the first
   * problem it stops reading, removes the file and throws its `AppError`; the body is left unread
   * and open, so that the answer still reaches the client.
   */
  async receive(runId: string, body: Readable, usedByRun: number): Promise<ReceivedArtifact> {
    const limit = this.limitFor(usedByRun);
    const id = randomUUID();
    const storageKey = `${runId}/${id}.tar.gz`;
    const file = this.pathOf(storageKey);
    const temp = path.join(path.dirname(file), `.${id}.partial`);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const hash = createHash('sha256');
    const head: number[] = [];
    let size = 0;
    const gunzip = createGunzip();
    const tar = new TarChecker(limit);
    const checked = pipeline(
      gunzip,
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          try {
            tar.push(chunk);
            callback();
          } catch (err) {
            callback(err as Error);
          }
        },
      }),
    ).then(
      () => tar.end(),
      (err: unknown) => {
        throw gzipError(err);
      },
    );
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        size += chunk.length;
        if (size > limit.bytes) return callback(artifactTooLarge(limit));
        for (let i = 0; head.length < 2 && i < chunk.length; i++) head.push(chunk[i]!);
        if (head.length > 0 && (head[0] !== 0x1f || (head.length > 1 && head[1] !== 0x8b))) return callback(notGzip());
        hash.update(chunk);
        // The archive goes to disk no faster than it can be checked.
        if (gunzip.write(chunk)) callback(null, chunk);
        else gunzip.once('drain', () => callback(null, chunk));
      },
      flush(callback) {
        if (size === 0) return callback(new AppError('artifact_empty', 'The upload is empty; send the artifact as a tar.gz archive.'));
        gunzip.end();
        checked.then(() => callback(), callback);
      },
    });
    // A problem found in the unpacked stream stops the upload where it is.
    checked.catch((err: Error) => meter.destroy(err));
    // Piped rather than part of the pipeline, whose failure would destroy the request's socket.
    const stopWatching = finished(body, (err) => {
      if (err) meter.destroy(new AppError('bad_request', 'The upload ended before the whole artifact arrived.'));
    });
    body.pipe(meter);
    let unpacked: TarSummary;
    const out = createWriteStream(temp, { flags: 'wx', mode: 0o600 });
    try {
      await pipeline(meter, out);
      unpacked = await checked;
    } catch (err) {
      body.unpipe(meter);
      gunzip.destroy();
      // A stream destroyed early may still be opening (creating) the file: remove it once it is shut.
      if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
      await rm(temp, { force: true });
      throw err;
    } finally {
      stopWatching();
    }
    return {
      id,
      storageKey,
      size,
      unpackedSize: unpacked.bytes,
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
