import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded-postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A PostgreSQL URL on which tests may create and drop their own databases. */
    adminDatabaseUrl: string;
  }
}

let cluster: EmbeddedPostgres | undefined;
let dir: string | undefined;

/**
 * Tests run against DATABASE_URL when it is set (an external PostgreSQL), and otherwise against
 * one embedded cluster started here, the same way `furrow start` starts it.
 */
export async function setup(project: TestProject): Promise<void> {
  let url = process.env.DATABASE_URL;
  if (!url) {
    dir = await mkdtemp(path.join(tmpdir(), 'furrow-test-pg-'));
    cluster = await startEmbeddedPostgres(dir, { port: 0, log: () => undefined });
    url = cluster.url;
  }
  project.provide('adminDatabaseUrl', url);
}

export async function teardown(): Promise<void> {
  await cluster?.stop();
  // As root the cluster lives outside the data dir (see startEmbeddedPostgres).
  if (cluster) await rm(path.dirname(cluster.clusterDir), { recursive: true, force: true });
  if (dir) await rm(dir, { recursive: true, force: true });
}
