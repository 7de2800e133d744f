import { Readable } from 'node:stream';
import pg from 'pg';
import { retryTransient } from '../../db/transient-error.js';
import { jobHeaderLine } from '../../domain/log-markers.js';
import { decodeChunk, encodeChunk, type EncodedChunk } from './log-encoding.js';

/** Chunks read per query when streaming a log out: bounds memory whatever the log's size. */
const PAGE_BYTES = 4 * 1024 * 1024;

/** A piece of a streamed log: a fixed text, or a job's log up to `size` bytes. */
type LogPart = { text: Buffer } | { jobId: string; size: number };
const sizeOf = (p: LogPart) => ('text' in p ? p.text.byteLength : p.size);

/** A job in a run's log: its header names its title and the `logSize` bytes of its log that follow. */
export interface RunLogJob {
  id: string;
  logSize: number;
  title: string;
}

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

  /** Streams one job's log from a byte offset, up to its end when the stream gets there. */
  stream(jobId: string, from = 0): Readable {
    return this.streamParts([{ jobId, size: Infinity }], from);
  }

  /**
   * A run's log: each job's header line (see domain/log-markers.ts), then exactly the `logSize`
   * bytes of its log that the header names (what the server held when the request started), so
   * that no output inside a log can pass for the next job's header. `from` counts through the
   * whole text; `size` is its length.
   */
  runLog(jobs: RunLogJob[], from = 0): { size: number; body: Readable } {
    const parts = jobs.flatMap((j): LogPart[] => [{ text: Buffer.from(jobHeaderLine(j.id, j.logSize, j.title)) }, { jobId: j.id, size: j.logSize }]);
    const size = parts.reduce((n, p) => n + sizeOf(p), 0);
    return { size, body: this.streamParts(parts, from) };
  }

  /** Streams fixed texts and job logs (each up to `size` bytes), one after the other, from a byte offset into them all. */
  private streamParts(parts: LogPart[], from: number): Readable {
    const store = this;
    let index = 0;
    let offset = from;
    while (index < parts.length - 1 && offset >= sizeOf(parts[index]!)) offset -= sizeOf(parts[index++]!);
    return new Readable({
      async read() {
        try {
          for (; index < parts.length; index += 1, offset = 0) {
            const part = parts[index]!;
            if (offset >= sizeOf(part)) continue;
            if ('text' in part) {
              this.push(part.text.subarray(offset));
              offset = part.text.byteLength;
              return;
            }
            const chunks = await store.read(part.jobId, offset, Math.min(PAGE_BYTES, part.size - offset));
            const data = Buffer.concat(chunks).subarray(0, part.size - offset);
            if (data.byteLength > 0) {
              offset += data.byteLength;
              this.push(data);
              return;
            }
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
