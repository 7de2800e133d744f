import { EventEmitter } from 'node:events';
import pg from 'pg';

export const CHANNELS = ['furrow_jobs', 'furrow_job', 'furrow_run', 'furrow_log', 'furrow_cancel', 'furrow_runner_removed', 'furrow_access', 'furrow_triggers', 'furrow_deliveries'] as const;
export type Channel = (typeof CHANNELS)[number];

/**
 * One dedicated connection LISTENing on Furrow's channels; emits `(channel, payload)` per
 * notification. Reconnects when the connection drops and then emits `reconnect`, after which
 * listeners re-check their state (notifications sent meanwhile were lost).
 */
export class PgListener extends EventEmitter {
  private client: pg.Client | undefined;
  private closed = false;

  constructor(private readonly url: string, private readonly log: (msg: string) => void) {
    super();
    this.setMaxListeners(0);
  }

  async start(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url });
    client.on('notification', (n) => this.emit(n.channel as Channel, n.payload ?? ''));
    client.on('error', () => undefined);
    client.on('end', () => {
      if (this.closed) return;
      this.log('notification connection lost; reconnecting');
      setTimeout(() => this.reconnect(), 500).unref();
    });
    await client.connect();
    for (const c of CHANNELS) await client.query(`LISTEN ${c}`);
    this.client = client;
  }

  private async reconnect(): Promise<void> {
    if (this.closed) return;
    try {
      await this.start();
      this.emit('reconnect');
    } catch {
      setTimeout(() => this.reconnect(), 1000).unref();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.client?.end().catch(() => undefined);
  }
}
