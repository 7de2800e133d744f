import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { request } from 'node:http';
import { connect } from 'node:net';
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

/** `tar czf` of `members` in `dir` (or `tar cf` when `gzip` is false), with extra flags before them. */
async function tarGz(dir: string, members: string[], flags: string[] = [], gzip = true): Promise<Buffer> {
  const out = path.join(await mkdtemp(path.join(tmpdir(), 'furrow-tar-')), 'a.tar');
  dirs.push(path.dirname(out));
  await run('tar', [gzip ? '-czf' : '-cf', out, ...flags, '-C', dir, '--', ...members]);
  return readFile(out);
}

/** Uploads `body` as the job's artifact `name`, as a runner would but without its checks. */
async function put(job: { jobId: string; token: string }, name: string, body: Buffer) {
  const res = await fetch(`${t.url}/api/v1/jobs/${job.jobId}/artifacts/${name}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${job.token}`, 'content-type': 'application/gzip' },
    body: new Uint8Array(body),
  });
  return { status: res.status, body: await res.json() };
}

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
    expect((err as Error).message).toMatch(/^artifact "big": upload failed: HTTP 413: The artifact (is larger than|unpacks to more than) the artifact limit of 1 MiB \(FURROW_ARTIFACT_MAX_MB raises it\)/);
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

  it('answers a refused upload to a client that asked to close, and reads the rest of its body until it does', async () => {
    const job = await runningJob();
    const ws = await workspace({ 'a.bin': randomBytes(0.9 * MiB), 'b.bin': randomBytes(0.9 * MiB), 'c.bin': randomBytes(0.9 * MiB) });
    await uploadArtifacts(options(job, ws, { upload: [{ name: 'a', paths: ['a.bin'] }, { name: 'b', paths: ['b.bin'] }] }));
    const body = await tarGz(ws, ['c.bin']);
    // The body goes on arriving after the answer: writes to a connection the server closed fail.
    const url = new URL(t.url);
    const socket = connect({ port: Number(url.port), host: url.hostname, allowHalfOpen: true });
    const head = `PUT /api/v1/jobs/${job.jobId}/artifacts/c HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${job.token}\r\nContent-Type: application/gzip\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
    const received: Buffer[] = [];
    let failure: string | undefined;
    socket.on('data', (d: Buffer) => received.push(d));
    socket.on('error', (err: NodeJS.ErrnoException) => (failure = err.code ?? err.message));
    const closed = new Promise((resolve) => socket.on('close', resolve));
    const write = (chunk: Buffer | string) => new Promise<void>((resolve) => socket.write(chunk, () => resolve()));
    await write(head);
    for (let at = 0; at < body.length && !failure; at += 64 * 1024) {
      await write(body.subarray(at, at + 64 * 1024));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    socket.end();
    await closed;
    expect(failure).toBeUndefined();
    const answer = Buffer.concat(received).toString();
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).code).toBe('artifact_too_large');
    expect((await artifactRows(job.runId)).map((r) => r.name).sort()).toEqual(['a', 'b']);
  });

  it('keeps nothing of an upload that breaks off', async () => {
    const job = await runningJob();
    const req = request(`${t.url}/api/v1/jobs/${job.jobId}/artifacts/cut`, {
      method: 'PUT',
      agent: false,
      headers: { authorization: `Bearer ${job.token}`, 'content-type': 'application/gzip' },
    });
    req.on('error', () => undefined);
    // The start of a real archive, which the server checks as it arrives and finds good so far.
    const dir = await workspace({ 'data.bin': randomBytes(900 * 1024) });
    req.write((await tarGz(dir, ['data.bin'])).subarray(0, 256 * 1024));
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

describe('artifact uploads are checked as tar.gz while they stream', () => {
  /** Expects the upload refused with `status` and `code`, and nothing of it kept. */
  async function refused(job: { runId: string; jobId: string; token: string }, body: Buffer, status: number, code: string, message?: RegExp) {
    const files = await storedFiles(job.runId);
    const res = await put(job, 'bad', body);
    expect(res, code).toMatchObject({ status, body: { code } });
    if (message) expect(res.body.message).toMatch(message);
    expect((await artifactRows(job.runId)).filter((r) => r.name === 'bad')).toEqual([]);
    expect(await storedFiles(job.runId)).toEqual(files);
  }

  it('stops a gzip bomb after reading little of it, holding little in memory', async () => {
    const job = await runningJob();
    const dir = await workspace();
    await run('truncate', ['-s', '200M', path.join(dir, 'zeros')]);
    const bomb = await tarGz(dir, ['zeros']);
    expect(bomb.length).toBeLessThan(400 * 1024); // 200 MiB of zeros pack into a few hundred KB

    // Sent a little at a time; the answer comes once the server has seen enough.
    const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    let peak = heapBefore;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers)), 5);
    let sent = 0;
    const answer = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = request(`${t.url}/api/v1/jobs/${job.jobId}/artifacts/bomb`, {
        method: 'PUT',
        agent: false,
        headers: { authorization: `Bearer ${job.token}`, 'content-type': 'application/gzip', 'content-length': bomb.length },
      });
      let answered = false;
      req.on('response', (res) => {
        answered = true;
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      });
      req.on('error', (err) => (answered ? undefined : reject(err)));
      const next = () => {
        if (answered || sent >= bomb.length) return;
        const chunk = bomb.subarray(sent, sent + 1024);
        sent += chunk.length;
        req.write(chunk);
        setTimeout(next, 5); // the whole bomb takes a second or more
      };
      next();
    });
    clearInterval(sampler);
    expect(answer).toMatchObject({ status: 413, body: { code: 'artifact_too_large' } });
    expect(answer.body.message).toBe('The artifact unpacks to more than the artifact limit of 1 MiB (FURROW_ARTIFACT_MAX_MB raises it).');
    expect(sent).toBeLessThan(bomb.length / 2);
    expect(peak - heapBefore).toBeLessThan(48 * MiB);
    await until(async () => (await storedFiles(job.runId)).length === 0);
    expect(await artifactRows(job.runId)).toEqual([]);
  });

  it('counts the unpacked sizes against the run limit', async () => {
    const job = await runningJob();
    const dir = await workspace();
    await run('truncate', ['-s', '900K', path.join(dir, 'zeros')]);
    const small = await tarGz(dir, ['zeros']);
    expect(small.length).toBeLessThan(10 * 1024);
    expect(await put(job, 'one', small)).toMatchObject({ status: 201, body: { size: small.length, unpackedSize: expect.any(Number) } });
    const list = (await t.api('GET', `/api/v1/runs/${job.runId}/artifacts`)).body.items;
    expect(list[0].unpackedSize).toBeGreaterThan(900 * 1024);
    expect((await put(job, 'two', small)).status).toBe(201);
    const third = await put(job, 'three', small);
    expect(third).toMatchObject({ status: 413, body: { code: 'artifact_too_large' } });
    expect(third.body.message).toMatch(/left of the run's artifact limit of 2 MiB/);
    expect((await artifactRows(job.runId)).map((r) => r.name).sort()).toEqual(['one', 'two']);
  });

  it('refuses empty, non-gzip, truncated and damaged bodies, and tar streams that are wrong, keeping nothing', async () => {
    const job = await runningJob();
    const dir = await workspace({ 'a.txt': 'hello\n', 'noise.bin': randomBytes(200 * 1024) });
    const good = await tarGz(dir, ['a.txt', 'noise.bin']);
    const plainTar = await tarGz(dir, ['a.txt'], [], false);

    await refused(job, Buffer.alloc(0), 400, 'artifact_empty');
    await refused(job, plainTar, 400, 'artifact_not_gzip', /tar czf/);
    await refused(job, Buffer.from('PK\x03\x04 a zip file'), 400, 'artifact_not_gzip');
    await refused(job, good.subarray(0, good.length >> 1), 400, 'artifact_truncated');
    await refused(job, good.subarray(0, 1), 400, 'artifact_truncated');
    const damaged = Buffer.from(good);
    damaged[damaged.length - 6] ^= 0xff; // the CRC of the data
    await refused(job, damaged, 400, 'artifact_corrupt');
    await refused(job, gzipSync(randomBytes(4096)), 400, 'artifact_not_tar', /not a tar\.gz archive/);
    // A real tar cut short, then compressed whole: the gzip is fine, the tar is not.
    await refused(job, gzipSync(plainTar.subarray(0, 1024)), 400, 'artifact_tar_unterminated');
    await refused(job, gzipSync(Buffer.alloc(0)), 400, 'artifact_tar_unterminated');
    expect((await put(job, 'good', good)).status).toBe(201);
  });

  it('refuses entries outside the directory and device files, by ustar, GNU and pax headers alike', async () => {
    const job = await runningJob();
    const dir = await workspace({ 'in/a.txt': 'a' });
    await run('mkfifo', [path.join(dir, 'fifo')]);
    const long = `${'d'.repeat(120)}/${'f'.repeat(90)}.txt`; // beyond the 100 bytes of a plain name field
    await mkdir(path.join(dir, path.dirname(long)), { recursive: true });
    await writeFile(path.join(dir, long), 'long');
    for (const format of ['gnu', 'pax', 'ustar']) {
      const fmt = [`--format=${format}`];
      await refused(job, await tarGz(path.join(dir, 'in'), ['../in/a.txt'], [...fmt, '-P']), 400, 'artifact_unsafe_path', /"\.\.\/in\/a\.txt"/);
      await refused(job, await tarGz(dir, [path.join(dir, 'in/a.txt')], [...fmt, '-P']), 400, 'artifact_unsafe_path', /absolute/);
      await refused(job, await tarGz('/dev', ['null'], fmt), 400, 'artifact_special_file', /"null", a character device/);
      await refused(job, await tarGz(dir, ['fifo'], fmt), 400, 'artifact_special_file', /FIFO/);
      // Long names go through GNU long-name and pax records; inside the directory, they are fine.
      const ok = await put(job, `long-${format}`, await tarGz(dir, [long, 'in'], fmt));
      expect(ok.status, format).toBe(201);
    }
    // A long name that leaves the directory, which only the long-name or pax record shows.
    for (const format of ['gnu', 'pax']) {
      await refused(job, await tarGz(path.join(dir, 'in'), [`../${long}`], [`--format=${format}`, '-P']), 400, 'artifact_unsafe_path');
    }
  });

  it('answers every truncated or mutated archive with 201 or a 4xx and keeps nothing of a refused one', async () => {
    const job = await runningJob();
    const dir = await workspace({ 'x/a.txt': 'a'.repeat(3000), 'x/b.bin': randomBytes(5000) });
    const good = await tarGz(dir, ['x'], ['--format=pax']);
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.record({ cut: fc.integer({ min: 0, max: good.length - 1 }) }),
          fc.record({ at: fc.integer({ min: 0, max: good.length - 1 }), xor: fc.integer({ min: 1, max: 255 }) }),
        ),
        async (change) => {
          const sent = Buffer.from('cut' in change ? good.subarray(0, change.cut) : good);
          if ('at' in change) sent[change.at]! ^= change.xor;
          const name = `m${++n}`;
          const res = await put(job, name, sent);
          const rows = (await artifactRows(job.runId)).filter((r) => r.name === name);
          if (res.status === 201) {
            expect('cut' in change).toBe(false); // every strict prefix is refused
            expect(rows).toHaveLength(1);
            await t.instance.resources.database.pool.query('DELETE FROM artifacts WHERE run_id = $1', [job.runId]);
          } else {
            expect(res.status).toBeGreaterThanOrEqual(400);
            expect(res.status).toBeLessThan(500);
            expect(res.body.code).toMatch(/^artifact_/);
            expect(rows).toEqual([]);
          }
          const temps = (await storedFiles(job.runId)).filter((f) => f.endsWith('.partial'));
          expect(temps).toEqual([]);
        },
      ),
      { numRuns: 60 },
    );
  });
});
