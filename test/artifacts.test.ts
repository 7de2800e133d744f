import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobSpec } from '../src/protocol/messages.js';
import { downloadArtifacts, uploadArtifacts, type ArtifactOptions } from '../src/runner/artifacts.js';
import { resolveJobUser, slotUserName, type JobUser } from '../src/runner/job-user.js';
import { copyArtifacts } from '../src/server/store/artifact-store.js';
import { newJobToken } from '../src/server/store/job-token.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

let t: TestInstance;
/** The job user when the tests run as root: tar then runs as it, as on a runner. */
let user: JobUser | undefined;
const dirs: string[] = [];

beforeAll(async () => {
  t = await startTestInstance({ FURROW_ARTIFACT_MAX_MB: '1', FURROW_ARTIFACT_RUN_MAX_MB: '2' });
  user = await resolveJobUser(slotUserName(t.instance.resources.config.executor.jobUser, 0));
});
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  await t?.stop();
});

/** A run whose job no runner takes, made `running` with a job token, as a claim would. */
async function runningJob() {
  const { workflowId, projectId } = await t.workflow('true', { labels: ['no-runner-has-this-label'] });
  const started = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
  expect(started.status).toBe(202);
  const runId = started.body.id as string;
  const { token, hash } = newJobToken();
  const job = await t.instance.resources.database.db
    .updateTable('jobs')
    .set({ status: 'running', job_token_hash: hash })
    .where('run_id', '=', runId)
    .returning('id')
    .executeTakeFirstOrThrow();
  return { runId, jobId: job.id, token, projectId };
}

/** An empty workspace owned by the job user. */
async function workspace(files: Record<string, string | Buffer> = {}): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'furrow-artifacts-'));
  dirs.push(dir);
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.join(dir, path.dirname(name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
  if (user) await run('chown', ['-R', `${user.uid}:${user.gid}`, dir]);
  return dir;
}

function options(job: { jobId: string; runId: string; token: string }, ws: string, artifacts: Partial<JobSpec['artifacts']>, log: string[] = []): ArtifactOptions {
  const spec = { jobId: job.jobId, runId: job.runId, artifacts: { token: job.token, upload: [], download: [], ...artifacts } } as unknown as JobSpec;
  return { serverUrl: t.url, spec, workspace: ws, user, output: (d) => log.push(d.toString()), signal: new AbortController().signal };
}

const artifactRows = (runId: string) => t.instance.resources.database.pool.query('SELECT name, storage_key FROM artifacts WHERE run_id = $1', [runId]).then((r) => r.rows);
/** Waits until `done` says yes; the server notices a broken connection on its own time. */
async function until(done: () => Promise<boolean>, ms = 5000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await done()); ) {
    if (Date.now() > deadline) throw new Error(`still not so after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const storedFiles = (runId: string) => readdir(path.join(t.dataDir, 'artifacts', runId)).catch(() => [] as string[]);

describe('artifacts', () => {
  it('uploads files and directories, lists them, and serves them to users and to later jobs', async () => {
    const job = await runningJob();
    const noise = randomBytes(100_000);
    const ws = await workspace({ 'dist/app.js': 'console.log(1)\n', 'dist/sub/data.bin': noise, 'report.txt': 'all good\n', 'other.txt': 'not uploaded' });
    const log: string[] = [];
    await uploadArtifacts(options(job, ws, { upload: [{ name: 'dist', paths: ['dist/**', 'report.txt'] }, { name: 'report.v1', paths: ['report.txt'] }] }, log));
    expect(log.join('')).toMatch(/^Uploaded artifact "dist" \(\d+\.\d KiB\)\nUploaded artifact "report\.v1" \(\d+ B\)\n$/);

    const list = await t.api('GET', `/api/v1/runs/${job.runId}/artifacts`);
    expect(list.status).toBe(200);
    expect(list.body.items.map((a: { name: string }) => a.name).sort()).toEqual(['dist', 'report.v1']);
    const dist = list.body.items.find((a: { name: string }) => a.name === 'dist');
    expect(dist).toMatchObject({ runId: job.runId, jobId: job.jobId, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(Date.parse(dist.createdAt)).not.toBeNaN();

    // The user route: the archive as it was stored.
    const res = await fetch(`${t.url}/api/v1/runs/${job.runId}/artifacts/dist`, { headers: { authorization: `Bearer ${t.adminToken}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/gzip');
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="dist.tar.gz"');
    expect(Number(res.headers.get('content-length'))).toBe(dist.size);
    const archive = Buffer.from(await res.arrayBuffer());
    expect(archive.length).toBe(dist.size);
    const out = await workspace();
    await writeFile(path.join(out, 'dist.tar.gz'), archive);
    await run('tar', ['-xzf', 'dist.tar.gz', '-C', out], { cwd: out });
    expect(await readFile(path.join(out, 'dist/sub/data.bin'))).toEqual(noise);
    expect(await readFile(path.join(out, 'report.txt'), 'utf8')).toBe('all good\n');

    // A later job of the run unpacks it where its workflow says.
    const next = await workspace();
    const downloaded: string[] = [];
    await downloadArtifacts(options(job, next, { download: [{ name: 'dist', path: 'from-build' }, { name: 'report.v1', path: '.' }] }, downloaded));
    expect(downloaded.join('')).toBe('Downloaded artifact "dist" into from-build\nDownloaded artifact "report.v1" into .\n');
    expect(await readFile(path.join(next, 'from-build/dist/app.js'), 'utf8')).toBe('console.log(1)\n');
    expect(await readFile(path.join(next, 'from-build/dist/sub/data.bin'))).toEqual(noise);
    expect(await readFile(path.join(next, 'report.txt'), 'utf8')).toBe('all good\n');
    await expect(stat(path.join(next, 'from-build/other.txt'))).rejects.toThrow(/ENOENT/);
    if (user) expect((await stat(path.join(next, 'from-build/dist/app.js'))).uid).toBe(user.uid);

    const activities = await t.api('GET', `/api/v1/projects/${job.projectId}/activities?type=artifact.*`);
    expect(activities.body.items.map((a: { type: string }) => a.type)).toEqual(['artifact.uploaded', 'artifact.uploaded']);
  });

  it('says which artifact is missing', async () => {
    const job = await runningJob();
    await expect(downloadArtifacts(options(job, await workspace(), { download: [{ name: 'nothing', path: '.' }] }))).rejects.toThrow(
      'artifact "nothing": download failed: HTTP 404: The run has no artifact named "nothing".',
    );
    const res = await t.api('GET', `/api/v1/runs/${job.runId}/artifacts/nothing`);
    expect(res.status).toBe(404);
    expect(res.body.message).toContain('"nothing"');
  });

  it('refuses a wrong token, a token of a finished job and a token of another job', async () => {
    const job = await runningJob();
    const ws = await workspace({ 'a.txt': 'a' });
    const upload = { upload: [{ name: 'a', paths: ['a.txt'] }] };
    await expect(uploadArtifacts(options({ ...job, token: 'fjt_not-a-token' }, ws, upload))).rejects.toThrow(/^artifact "a": upload failed: HTTP 401: .*token/);

    const other = await runningJob();
    const res = await t.api('GET', `/api/v1/jobs/${other.jobId}/artifacts/a`, undefined, job.token);
    expect(res.status).toBe(403);

    await t.instance.resources.database.db.updateTable('jobs').set({ status: 'succeeded' }).where('id', '=', job.jobId).execute();
    await expect(uploadArtifacts(options(job, ws, upload))).rejects.toThrow(/HTTP 401: .*valid only while its job runs/);
    expect(await artifactRows(job.runId)).toEqual([]);
  });

  it('refuses an artifact over the limit and keeps neither row nor file', async () => {
    const job = await runningJob();
    const ws = await workspace({ 'big.bin': randomBytes(3 * MiB) });
    const err = await uploadArtifacts(options(job, ws, { upload: [{ name: 'big', paths: ['big.bin'] }] })).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^artifact "big": upload failed: HTTP 413: The artifact is larger than the artifact limit of 1 MiB \(FURROW_ARTIFACT_MAX_MB raises it\)/);
    expect(await artifactRows(job.runId)).toEqual([]);
    expect(await storedFiles(job.runId)).toEqual([]);

    // The same, told by the declared length before a byte is read.
    const declared = await fetch(`${t.url}/api/v1/jobs/${job.jobId}/artifacts/big`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${job.token}`, 'content-type': 'application/gzip' },
      body: randomBytes(2 * MiB),
    });
    expect(declared.status).toBe(413);
    expect((await declared.json()).code).toBe('artifact_too_large');
    expect(await storedFiles(job.runId)).toEqual([]);
  });

  it('keeps the artifacts of a run within the run limit', async () => {
    const job = await runningJob();
    const ws = await workspace({ 'a.bin': randomBytes(0.8 * MiB), 'b.bin': randomBytes(0.8 * MiB), 'c.bin': randomBytes(0.8 * MiB) });
    await uploadArtifacts(options(job, ws, { upload: [{ name: 'a', paths: ['a.bin'] }, { name: 'b', paths: ['b.bin'] }] }));
    await expect(uploadArtifacts(options(job, ws, { upload: [{ name: 'c', paths: ['c.bin'] }] }))).rejects.toThrow(
      /^artifact "c": upload failed: HTTP 413: The artifact is larger than the 0\.4 MiB left of the run's artifact limit of 2 MiB \(FURROW_ARTIFACT_RUN_MAX_MB raises it\)/,
    );
    expect((await artifactRows(job.runId)).map((r) => r.name).sort()).toEqual(['a', 'b']);
    expect(await storedFiles(job.runId)).toHaveLength(2);
  });

  it('keeps nothing of an upload that breaks off', async () => {
    const job = await runningJob();
    const req = request(`${t.url}/api/v1/jobs/${job.jobId}/artifacts/cut`, {
      method: 'PUT',
      agent: false,
      headers: { authorization: `Bearer ${job.token}`, 'content-type': 'application/gzip' },
    });
    req.on('error', () => undefined);
    req.write(randomBytes(256 * 1024));
    await until(async () => (await storedFiles(job.runId)).length === 1);
    req.destroy();
    await until(async () => (await storedFiles(job.runId)).length === 0);
    expect(await artifactRows(job.runId)).toEqual([]);
  });

  it('breaks the upload off when tar fails, so that the server keeps nothing', async () => {
    const job = await runningJob();
    const ws = await workspace({ 'out/a.bin': randomBytes(200_000), 'out/secret': 'x', 'out/z.bin': randomBytes(200_000) });
    await chmod(path.join(ws, 'out/secret'), 0o000);
    await expect(uploadArtifacts(options(job, ws, { upload: [{ name: 'out', paths: ['out'] }] }))).rejects.toThrow(/^artifact "out": tar exited with 2: .*out\/secret: Cannot open: Permission denied/);
    await until(async () => (await storedFiles(job.runId)).length === 0);
    expect(await artifactRows(job.runId)).toEqual([]);
  });

  it('refuses a name the run already has', async () => {
    const job = await runningJob();
    const ws = await workspace({ 'a.txt': 'a' });
    const upload = { upload: [{ name: 'a', paths: ['a.txt'] }] };
    await uploadArtifacts(options(job, ws, upload));
    await expect(uploadArtifacts(options(job, ws, upload))).rejects.toThrow('artifact "a": upload failed: HTTP 409: The run already has an artifact named "a"; names are unique within a run.');
    expect(await artifactRows(job.runId)).toHaveLength(1);
    expect(await storedFiles(job.runId)).toHaveLength(1);
  });

  it('refuses paths outside the workspace and paths that match nothing before uploading anything', async () => {
    const job = await runningJob();
    const ws = await workspace({ 'a.txt': 'a' });
    const ok = { name: 'ok', paths: ['a.txt'] };
    await expect(uploadArtifacts(options(job, ws, { upload: [ok, { name: 'up', paths: ['../etc/passwd'] }] }))).rejects.toThrow(
      'artifact "up": "../etc/passwd" must be a path inside the workspace (relative, without "..")',
    );
    await expect(uploadArtifacts(options(job, ws, { upload: [{ name: 'abs', paths: ['/etc/passwd'] }] }))).rejects.toThrow(/"\/etc\/passwd" must be a path inside the workspace/);
    await expect(uploadArtifacts(options(job, ws, { upload: [{ name: 'root', paths: ['/**'] }] }))).rejects.toThrow(/"\/\*\*" must be a path inside the workspace/);
    await expect(uploadArtifacts(options(job, ws, { upload: [{ name: 'glob', paths: ['src/*.js'] }] }))).rejects.toThrow(/"src\/\*\.js" is a pattern/);
    await expect(downloadArtifacts(options(job, ws, { download: [{ name: 'ok', path: 'a/../../x' }] }))).rejects.toThrow(/"a\/\.\.\/\.\.\/x" must be a path inside the workspace/);
    expect(await artifactRows(job.runId)).toEqual([]);

    await expect(uploadArtifacts(options(job, ws, { upload: [ok, { name: 'dist', paths: ['a.txt', 'dist/**'] }] }))).rejects.toThrow('artifact "dist": no file matches "dist/**"');
    expect(await artifactRows(job.runId)).toEqual([]);
    expect(await storedFiles(job.runId)).toEqual([]);
  });

  it('shares files with a re-run, which keeps them when the original run is deleted', async () => {
    const job = await runningJob();
    await uploadArtifacts(options(job, await workspace({ 'a.txt': 'shared' }), { upload: [{ name: 'a', paths: ['a.txt'] }] }));
    const rerun = await runningJob();
    const { db } = t.instance.resources.database;
    // A re-run copies what the jobs it keeps uploaded.
    expect(await db.transaction().execute((tx) => copyArtifacts(tx, job.runId, rerun.runId, [rerun.jobId]))).toBe(0);
    expect(await db.transaction().execute((tx) => copyArtifacts(tx, job.runId, rerun.runId, [job.jobId]))).toBe(1);
    expect(await db.transaction().execute((tx) => copyArtifacts(tx, job.runId, rerun.runId, [job.jobId]))).toBe(0); // once only
    const [original] = await artifactRows(job.runId);
    expect(await artifactRows(rerun.runId)).toEqual([original]);

    await db.deleteFrom('runs').where('id', '=', job.runId).execute();
    const ws = await workspace();
    await downloadArtifacts(options(rerun, ws, { download: [{ name: 'a', path: 'in' }] }));
    expect(await readFile(path.join(ws, 'in/a.txt'), 'utf8')).toBe('shared');
    expect((await lstat(path.join(t.dataDir, 'artifacts', original.storage_key))).isFile()).toBe(true);
  });
});
