import { EventEmitter } from 'node:events';
import type { RunnerChannel, ServerReply } from '../protocol/messages.js';

/** Largest log message sent at once. */
const MAX_BATCH = 1024 * 1024;
/** Above this many unsent bytes the producer is asked to pause (`write` returns false). */
const HIGH_WATER = 4 * 1024 * 1024;

/**
 * Ships a job's output to the server as offset-ordered `log` messages, one in flight at a time,
 * batching whatever arrived meanwhile. Memory stays bounded: past HIGH_WATER `write` returns
 * false and `drain` is emitted once the backlog is sent, like a Node stream.
 */
export class LogSink extends EventEmitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private offset = 0;
  private sending: Promise<void> | undefined;
  private failed: Error | undefined;

  constructor(
    private readonly channel: RunnerChannel,
    private readonly jobId: string,
    private readonly onCancel: () => void,
  ) {
    super();
  }

  write(data: Buffer): boolean {
    if (data.byteLength === 0) return true;
    this.pending.push(data);
    this.pendingBytes += data.byteLength;
    this.sending ??= this.pump();
    return this.pendingBytes < HIGH_WATER;
  }

  private async pump(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch: Buffer[] = [];
        let size = 0;
        while (this.pending.length > 0 && size < MAX_BATCH) {
          const b = this.pending.shift()!;
          batch.push(b);
          size += b.byteLength;
        }
        this.pendingBytes -= size;
        const data = batch.length === 1 ? batch[0]! : Buffer.concat(batch, size);
        const reply = await this.channel.request<Extract<ServerReply, { type: 'ack' }>>({ type: 'log', jobId: this.jobId, offset: this.offset, data });
        this.offset += size;
        if (reply.cancel) this.onCancel();
        if (this.pendingBytes < HIGH_WATER) this.emit('drain');
      }
    } catch (err) {
      this.failed = err as Error;
      this.pending = [];
      this.pendingBytes = 0;
      this.emit('drain');
    } finally {
      this.sending = undefined;
    }
  }

  /** Resolves when everything written so far has reached the server. */
  async flush(): Promise<void> {
    while (this.sending) await this.sending;
    if (this.failed) throw this.failed;
  }
}
