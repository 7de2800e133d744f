import { EventEmitter } from 'node:events';
import type { RunnerChannel, ServerReply } from '../protocol/messages.js';

/** Largest log message sent at once. */
const MAX_BATCH = 1024 * 1024;
/** Messages on their way at once: the server keeps their order, and this overlaps its work. */
const MAX_IN_FLIGHT = 6;
/** Above this many unsent bytes the producer is asked to pause (`write` returns false). */
const HIGH_WATER = 4 * 1024 * 1024;

/**
 * Ships a job's output to the server as offset-ordered `log` messages, a few in flight, batching
 * whatever arrived meanwhile. Memory stays bounded: past HIGH_WATER `write` returns false and
 * `drain` is emitted once the backlog shrinks, like a Node stream.
 */
export class LogSink extends EventEmitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private offset = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private failed: Error | undefined;

  constructor(
    private readonly channel: RunnerChannel,
    private readonly jobId: string,
    private readonly onCancel: () => void,
  ) {
    super();
  }

  write(data: Buffer): boolean {
    if (data.byteLength === 0 || this.failed) return true;
    this.pending.push(data);
    this.pendingBytes += data.byteLength;
    this.pump();
    return this.pendingBytes < HIGH_WATER;
  }

  private pump(): void {
    while (this.pending.length > 0 && this.inFlight.size < MAX_IN_FLIGHT && !this.failed) {
      const batch: Buffer[] = [];
      let size = 0;
      while (this.pending.length > 0 && size < MAX_BATCH) {
        const b = this.pending.shift()!;
        batch.push(b);
        size += b.byteLength;
      }
      this.pendingBytes -= size;
      const offset = this.offset;
      this.offset += size;
      const data = batch.length === 1 ? batch[0]! : Buffer.concat(batch, size);
      const sent: Promise<void> = this.channel
        .request<Extract<ServerReply, { type: 'ack' }>>({ type: 'log', jobId: this.jobId, offset, data })
        .then(
          (reply) => {
            if (reply.cancel) this.onCancel();
          },
          (err: Error) => {
            this.failed ??= err;
            this.pending = [];
            this.pendingBytes = 0;
          },
        )
        .finally(() => {
          this.inFlight.delete(sent);
          if (this.pendingBytes < HIGH_WATER) this.emit('drain');
          this.pump();
        });
      this.inFlight.add(sent);
    }
  }

  /** Resolves when everything written so far has reached the server. */
  async flush(): Promise<void> {
    for (;;) {
      if (this.failed) throw this.failed;
      if (this.inFlight.size === 0) {
        if (this.pending.length === 0) return;
        this.pump();
        continue;
      }
      await Promise.race(this.inFlight);
    }
  }
}
