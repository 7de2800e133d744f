import { EventEmitter } from 'node:events';
import { ConnectionLost, type RunnerChannel, type ServerReply } from '../protocol/messages.js';

/** Largest log message sent at once. */
const MAX_BATCH = 1024 * 1024;
/** Above this many unconfirmed bytes the producer is asked to pause (`write` returns false). */
const HIGH_WATER = 8 * 1024 * 1024;

/**
 * Ships a job's output to the server as offset-ordered `log` messages, up to the channel's
 * `logWindow` in flight, batching whatever arrived meanwhile. Bytes stay buffered until the server
 * confirms it holds them, so nothing is lost when a connection drops: the sink stalls until
 * `resume(end)` names the server's size after the reconnect and resends from there. A chunk the
 * server refuses (it did not start where the stored log ends) makes it resend from the `end` the
 * server reported; the server's offset check means nothing is ever stored twice. Memory stays
 * bounded: past HIGH_WATER `write` returns false and `drain` is emitted once the backlog shrinks.
 */
export class LogSink extends EventEmitter {
  /** Unconfirmed bytes, from `confirmed` on. */
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  /** Bytes the server holds. */
  private confirmed = 0;
  /** Next byte to send. */
  private sendOffset = 0;
  private inFlight = 0;
  /** Bumped on every rewind, so replies to messages sent before it do not rewind again. */
  private generation = 0;
  private stalled = false;
  private stopped: Error | undefined;
  private changed: (() => void)[] = [];

  constructor(
    private readonly channel: RunnerChannel,
    private readonly jobId: string,
    private readonly onCancel: () => void,
  ) {
    super();
  }

  write(data: Buffer): boolean {
    if (data.byteLength === 0 || this.stopped) return true;
    this.chunks.push(data);
    this.bufferedBytes += data.byteLength;
    this.pump();
    return this.bufferedBytes < HIGH_WATER;
  }

  /** After a reconnect: the server holds `end` bytes; resend what it lacks. */
  resume(end: number): void {
    if (this.stalled) {
      this.stalled = false;
      this.rewind(end);
    } else {
      this.confirm(end);
    }
    this.pump();
  }

  /** Stops sending (the job is no longer this runner's); `flush` then rejects with `reason`. */
  abandon(reason: Error): void {
    this.stopped ??= reason;
    this.notify();
  }

  /** Resolves when everything written so far is held by the server. */
  async flush(): Promise<void> {
    for (;;) {
      if (this.stopped) throw this.stopped;
      if (this.bufferedBytes === 0 && this.inFlight === 0) return;
      await new Promise<void>((resolve) => this.changed.push(resolve));
    }
  }

  private notify(): void {
    const waiters = this.changed;
    this.changed = [];
    for (const w of waiters) w();
  }

  private pump(): void {
    const end = this.confirmed + this.bufferedBytes;
    while (!this.stalled && !this.stopped && this.inFlight < this.channel.logWindow && this.sendOffset < end) {
      const offset = this.sendOffset;
      const data = this.slice(offset, Math.min(MAX_BATCH, end - offset));
      this.sendOffset += data.byteLength;
      this.inFlight += 1;
      const generation = this.generation;
      this.channel
        .request<ServerReply>({ type: 'log', jobId: this.jobId, offset, data })
        .then(
          (reply) => this.onReply(reply, generation),
          (err: Error) => {
            if (!(err instanceof ConnectionLost)) this.stopped ??= err;
            else if (generation === this.generation) this.stalled = true;
          },
        )
        .finally(() => {
          this.inFlight -= 1;
          this.notify();
          this.pump();
        });
    }
  }

  private onReply(reply: ServerReply, generation: number): void {
    if (reply.type !== 'ack') {
      this.stopped ??= new Error(`the server refused the log: ${reply.type === 'error' ? reply.message : reply.type}`);
      return;
    }
    if (reply.cancel) this.onCancel();
    if (reply.cancel && !reply.appended) {
      this.stopped ??= new Error('the server no longer takes this job’s log');
      return;
    }
    if (reply.end === undefined) return;
    if (reply.appended === false && generation === this.generation) this.rewind(reply.end);
    else this.confirm(reply.end);
  }

  private rewind(end: number): void {
    this.generation += 1;
    if (end < this.confirmed) {
      this.stopped ??= new Error(`the server lost log bytes ${end}–${this.confirmed} it had confirmed`);
      return;
    }
    this.confirm(end);
    this.sendOffset = end;
  }

  /** The server holds `end` bytes: forget them here. */
  private confirm(end: number): void {
    let drop = Math.min(end, this.confirmed + this.bufferedBytes) - this.confirmed;
    if (drop <= 0) return;
    this.confirmed += drop;
    this.bufferedBytes -= drop;
    while (drop > 0) {
      const first = this.chunks[0]!;
      if (first.byteLength <= drop) {
        this.chunks.shift();
        drop -= first.byteLength;
      } else {
        this.chunks[0] = first.subarray(drop);
        drop = 0;
      }
    }
    if (this.sendOffset < this.confirmed) this.sendOffset = this.confirmed;
    if (this.bufferedBytes < HIGH_WATER) this.emit('drain');
  }

  /** Up to `size` buffered bytes starting at log offset `from`. */
  private slice(from: number, size: number): Buffer {
    let skip = from - this.confirmed;
    const parts: Buffer[] = [];
    let taken = 0;
    for (const c of this.chunks) {
      if (taken >= size) break;
      if (skip >= c.byteLength) {
        skip -= c.byteLength;
        continue;
      }
      const part = c.subarray(skip, skip + (size - taken));
      skip = 0;
      parts.push(part);
      taken += part.byteLength;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, taken);
  }
}
