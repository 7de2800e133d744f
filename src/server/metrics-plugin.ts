import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { sql } from 'kysely';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Db } from '../db/database.js';
import type { LiveHub } from './live/live-hub.js';
import { runnerOnline } from './store/runner-sql.js';

/** Prometheus metrics at /metrics: runs by status, queue depth, runners by state, live viewers, HTTP latency, process stats. */
export const metricsPlugin = fp(async (app: FastifyInstance, opts: { db: Db; live: LiveHub }) => {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'furrow_' });
  const latency = new Histogram({
    name: 'furrow_http_request_duration_seconds',
    help: 'HTTP request latency',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const requests = new Counter({ name: 'furrow_http_requests_total', help: 'HTTP requests', labelNames: ['method', 'route', 'status'], registers: [registry] });
  new Gauge({
    name: 'furrow_runs',
    help: 'Runs by status',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const { rows } = await sql<{ status: string; n: number }>`SELECT status, count(*)::int AS n FROM runs GROUP BY status`.execute(opts.db);
      this.reset();
      for (const r of rows) this.set({ status: r.status }, r.n);
    },
  });
  new Gauge({
    name: 'furrow_queue_depth',
    help: 'Jobs queued and not yet claimed by a runner',
    registers: [registry],
    async collect() {
      const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM jobs WHERE status = 'queued' AND runner_id IS NULL`.execute(opts.db);
      this.set(rows[0]?.n ?? 0);
    },
  });

  new Gauge({
    name: 'furrow_runners',
    help: 'Registered runners by state (online, paused, offline)',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const { rows } = await sql<{ state: string; n: number }>`
        SELECT CASE WHEN NOT ${runnerOnline} THEN 'offline'
                    WHEN paused THEN 'paused' ELSE 'online' END AS state, count(*)::int AS n
        FROM runners GROUP BY 1`.execute(opts.db);
      this.reset();
      for (const state of ['online', 'paused', 'offline']) this.set({ state }, rows.find((r) => r.state === state)?.n ?? 0);
    },
  });

  new Gauge({
    name: 'furrow_live_sockets',
    help: 'Open live WebSockets on this instance',
    registers: [registry],
    collect() {
      this.set(opts.live.stats().sockets);
    },
  });
  new Gauge({
    name: 'furrow_live_subscriptions',
    help: 'Live subscriptions held on this instance',
    registers: [registry],
    collect() {
      this.set(opts.live.stats().subscriptions);
    },
  });
  new Counter({
    name: 'furrow_live_sockets_closed_total',
    help: 'Live WebSockets the server closed, by reason (send_buffer: the client did not read; revoked: its credential ended)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(opts.live.stats().closed)) this.inc({ reason }, n);
    },
  });

  app.addHook('onResponse', async (req, reply) => {
    const labels = { method: req.method, route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) };
    latency.observe(labels, reply.elapsedTime / 1000);
    requests.inc(labels);
  });
  app.get('/metrics', { config: { access: { capability: 'public' } }, schema: { hide: true } }, async (_req, reply) =>
    reply.type(registry.contentType).send(await registry.metrics()),
  );
});
