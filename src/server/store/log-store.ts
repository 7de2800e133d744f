import { Readable } from 'node:stream';
import pg from 'pg';
import { retryTransient } from '../../db/transient-error.js';
import { decodeChunk, encodeChunk, type EncodedChunk } from './log-encoding.js';

/** Chunks read per query when streaming a log out: bounds memory whatever the log's size. */
const PAGE_BYTES = 4 * 1024 * 1024;

export interface AppendResult {
  /** False when the chunk did not start where the stored log ends (a resend, or a gap). */
  appended: boolean;
  /** Bytes of the runner's stream the server has taken in (what it resends from). */
  end: number;
  cancel: boolean;
}

/**
 * Job logs in PostgreSQL, as chunks keyed by byte offset (deflated where that pays, see
 * log-encoding.ts). Appends go through their own small pool
 * with `synchronous_commit = off`: a crash can lose the last moments of a log, never reorder or
 * duplicate it; every append answers with the offset the server holds, for a runner to resend from.
 */
export class LogStore {
  private readonly pool: pg.Pool;
  /** Per job, the last append in the queue: the next one starts when it settles. */
  private readonly tails = new Map<string, Promise<void>>();

  constructor(url: string, readonly readPool: pg.Pool) {
    this.pool = new pg.Pool({ connectionString: url, max: 4, options: '-c synchronous_commit=off' });
    this.pool.on('error', () => undefined);
  }

  /**
   * Appends in the order calls arrive for a job; compression of later chunks overlaps the
   * insert of earlier ones, so a runner may keep several appends in flight. `offset` and
   * `received` are in the runner's stream; `data` is what is stored for them (the server may have
   * masked it, changing its length), at the end of the stored log.
   */
  append(jobId: string, offset: number, data: Uint8Array, received = data.byteLength): Promise<AppendResult> {
    const encoded = encodeChunk(data);
    const previous = this.tails.get(jobId) ?? Promise.resolve();
    // Retried in place through a database restart, so later appends keep waiting behind it; a
    // repeat of one that did commit is refused by the offset check and answers the right `end`.
    const mine = previous.then(async () => {
      const chunk = await encoded;
      return retryTransient(() => this.insert(jobId, offset, chunk, data.byteLength, received));
    });
    const tail = mine.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(jobId, tail);
    void tail.then(() => this.tails.get(jobId) === tail && this.tails.delete(jobId));
    return mine;
  }

  private async insert(jobId: string, offset: number, encoded: EncodedChunk, size: number, received: number): Promise<AppendResult> {
    const { rows } = await this.pool.query<{ cancel: boolean }>(
      `WITH j AS (
         UPDATE jobs SET log_size = log_size + $4::bigint, log_received = $2::bigint + $6::bigint
         WHERE id = $1 AND log_received = $2 AND status IN ('queued', 'running') RETURNING id, cancel_requested, log_size - $4::bigint AS at),
       ins AS (INSERT INTO log_chunks (job_id, "offset", size, compressed, data) SELECT id, at, $4, $5, $3 FROM j WHERE $4::bigint > 0)
       SELECT j.cancel_requested AS cancel, pg_notify('furrow_log', $1::text) FROM j`,
      [jobId, offset, encoded.data, size, encoded.compressed, received],
    );
    if (rows[0]) return { appended: true, end: offset + received, cancel: rows[0].cancel };
    // Refused: report what the server holds, and tell a runner whose job has ended to stop.
    const cur = await this.readPool.query<{ log_received: number; stop: boolean }>(
      `SELECT log_received, cancel_requested OR status NOT IN ('queued', 'running') AS stop FROM jobs WHERE id = $1`,
      [jobId],
    );
    return { appended: false, end: Number(cur.rows[0]?.log_received ?? 0), cancel: cur.rows[0]?.stop ?? true };
  }

  /** Chunks covering [from, from + maxBytes), the first one trimmed to start at `from`. */
  async read(jobId: string, from: number, maxBytes = PAGE_BYTES): Promise<Buffer[]> {
    const { rows } = await this.readPool.query<{ offset: number; compressed: boolean; data: Buffer }>(
      `SELECT "offset", compressed, data FROM log_chunks
       WHERE job_id = $1 AND "offset" + size > $2 AND "offset" < $2::bigint + $3::bigint
       ORDER BY "offset"`,
      [jobId, from, maxBytes],
    );
    const chunks = await Promise.all(rows.map((r) => decodeChunk(r.data, r.compressed)));
    return chunks.map((c, i) => (rows[i]!.offset < from ? c.subarray(from - rows[i]!.offset) : c));
  }

  /** Streams the logs of the given jobs, one after the other, from a byte offset into the first. */
  stream(jobIds: string[], from = 0): Readable {
    const store = this;
    let index = 0;
    let offset = from;
    return new Readable({
      async read() {
        try {
          while (index < jobIds.length) {
            const chunks = await store.read(jobIds[index]!, offset);
            if (chunks.length > 0) {
              for (const c of chunks) offset += c.byteLength;
              this.push(Buffer.concat(chunks));
              return;
            }
            index += 1;
            offset = 0;
          }
          this.push(null);
        } catch (err) {
          this.destroy(err as Error);
        }
      },
    });
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
