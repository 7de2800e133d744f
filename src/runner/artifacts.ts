import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { JobSpec } from '../protocol/messages.js';
import { JOB_PATH } from './executors/spawn-step.js';

export interface ArtifactOptions {
  /** The server's base URL, as this runner reaches it. */
  serverUrl: string;
  spec: JobSpec;
  /** The job's workspace on this host. */
  workspace: string;
  /**
   * The job user: every command that touches the workspace runs as it, so that artifacts hold
   * only what the job could read and unpack only where it could write.
   */
  user?: { uid: number; gid: number } | undefined;
  /** The job's log: one line per artifact. */
  output: (data: Buffer) => void;
  signal: AbortSignal;
}

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why it could not start (or an abort). */
  failure: Error | undefined;
  stderr: string;
}

const STDERR_KEPT = 4096;

function spawnAsJobUser(opts: ArtifactOptions, argv: string[], stdio: StdioOptions): ChildProcess {
  const [command, ...args] = argv;
  return spawn(command!, args, {
    cwd: opts.workspace,
    env: { PATH: JOB_PATH, LANG: 'C.UTF-8' },
    stdio,
    signal: opts.signal,
    ...(opts.user ? { uid: opts.user.uid, gid: opts.user.gid } : {}),
  });
}

/** Resolves once `child` has ended and its output is read, with the start of its stderr. */
function finished(child: ChildProcess): Promise<Finished> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < STDERR_KEPT) stderr += d.toString('utf8');
  });
  let failure: Error | undefined;
  child.once('error', (err) => (failure = err));
  return new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, failure, stderr: stderr.trim().slice(0, STDERR_KEPT) })));
}

const succeeded = (f: Finished) => f.code === 0 && !f.failure;

function describe(command: string, f: Finished): string {
  if (f.failure) return `${command} could not run: ${f.failure.message}`;
  const how = f.signal ? `was stopped by ${f.signal}` : `exited with ${f.code}`;
  return `${command} ${how}${f.stderr ? `: ${f.stderr}` : ''}`;
}

/** Runs `argv` as the job user to its end. */
function runAsJobUser(opts: ArtifactOptions, argv: string[]): Promise<Finished> {
  return finished(spawnAsJobUser(opts, argv, ['ignore', 'ignore', 'pipe']));
}

/** Throws for a path that is absolute or climbs out of the workspace. */
function assertInsideWorkspace(artifact: string, p: string): void {
  if (path.posix.isAbsolute(p) || p.split('/').includes('..')) {
    throw new Error(`artifact "${artifact}": "${p}" must be a path inside the workspace (relative, without "..")`);
  }
}

/** What an upload path names: a file or directory; a trailing `/**` names the directory itself. */
function uploadPath(artifact: string, p: string): string {
  assertInsideWorkspace(artifact, p);
  const plain = p.endsWith('/**') ? p.slice(0, -2) : p;
  if (/[*?[]/.test(plain)) throw new Error(`artifact "${artifact}": "${p}" is a pattern; name files or directories (a trailing "/**" means a whole directory)`);
  return path.posix.normalize(plain);
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  for (; value >= 1024 && unit < units.length - 1; unit++) value /= 1024;
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** An error saying what failed, the HTTP status and the server's own message. */
function httpError(what: string, status: number, text: string): Error {
  let message = text.trim();
  try {
    message = (JSON.parse(text) as { message?: string }).message ?? message;
  } catch {
    // not JSON: the text as it came
  }
  return new Error(`${what}: HTTP ${status}${message ? `: ${message}` : ''}`);
}

function artifactUrl(opts: ArtifactOptions, name: string): string {
  return `${opts.serverUrl.replace(/\/$/, '')}/api/v1/jobs/${opts.spec.jobId}/artifacts/${encodeURIComponent(name)}`;
}

/**
 * PUTs `body` on a connection of its own and resolves with the answer, which may come before the
 * whole body went out (a refusal). node:http rather than fetch: when a streamed body fails, fetch
 * keeps a connection open behind it, which the server's shutdown must wait out; here the
 * request's connection goes down with it, and the server sees the upload break off.
 */
function put(url: string, headers: Record<string, string>, body: Readable, signal: AbortSignal): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? https : http).request(url, { method: 'PUT', headers, signal, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
        req.destroy(); // after a refusal, the rest of the body is not wanted
      });
    });
    // A server that refuses an upload answers and closes while the body still streams: the write
    // fails (EPIPE, a reset) but the answer, which says why, may still be on its way.
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ECONNRESET') setTimeout(() => reject(err), 1000).unref();
      else reject(err);
    });
    body.on('error', (err) => req.destroy(err));
    body.pipe(req);
  });
}

/** Archives `paths` with tar as the job user and streams the archive to the server; returns its size. */
async function uploadOne(opts: ArtifactOptions, name: string, paths: string[]): Promise<number> {
  const what = `artifact "${name}"`;
  const tar = spawnAsJobUser(opts, ['tar', '-czf', '-', '-C', opts.workspace, '--', ...paths], ['ignore', 'pipe', 'pipe']);
  const ended = finished(tar);
  let tarError: Error | undefined;
  // The body ends only after tar succeeded: a failing tar breaks the upload off, and the server keeps nothing.
  async function* archive() {
    yield* tar.stdout!;
    const result = await ended;
    if (!succeeded(result)) throw (tarError = new Error(`${what}: ${describe('tar', result)}`));
  }
  // Once the answer is in, nobody reads the archive any more: tar ends only when its pipe is gone.
  const stop = () => {
    tar.stdout!.destroy();
    tar.kill('SIGKILL');
    return ended;
  };
  const headers = { authorization: `Bearer ${opts.spec.artifacts.token}`, 'content-type': 'application/gzip' };
  let answer: { status: number; text: string };
  try {
    answer = await put(artifactUrl(opts, name), headers, Readable.from(archive()), opts.signal);
  } catch (err) {
    await stop();
    throw tarError ?? new Error(`${what}: could not upload it to ${opts.serverUrl}: ${(err as Error).message}`);
  }
  await stop();
  if (answer.status !== 201) throw httpError(`${what}: upload failed`, answer.status, answer.text);
  return (JSON.parse(answer.text) as { size: number }).size;
}

/**
 * Uploads the job's artifacts (`spec.artifacts.upload`), one tar.gz each. Every path of every
 * artifact is checked first, so that a mistake in one uploads none.
 */
export async function uploadArtifacts(opts: ArtifactOptions): Promise<void> {
  const uploads = opts.spec.artifacts.upload.map((a) => ({ name: a.name, paths: a.paths.map((p) => ({ given: p, path: uploadPath(a.name, p) })) }));
  for (const { name, paths } of uploads) {
    for (const { given, path: p } of paths) {
      const test = await runAsJobUser(opts, ['test', '-e', p]);
      if (test.failure) throw new Error(`artifact "${name}": ${describe('test', test)}`);
      if (test.code !== 0) throw new Error(`artifact "${name}": no file matches "${given}"`);
    }
  }
  for (const { name, paths } of uploads) {
    const size = await uploadOne(opts, name, paths.map((p) => p.path));
    opts.output(Buffer.from(`Uploaded artifact "${name}" (${formatBytes(size)})\n`));
  }
}

/** Downloads artifacts of the job's run (`spec.artifacts.download`) and unpacks each into its path. */
export async function downloadArtifacts(opts: ArtifactOptions): Promise<void> {
  const downloads = opts.spec.artifacts.download.map((d) => {
    assertInsideWorkspace(d.name, d.path);
    return { name: d.name, dir: path.posix.normalize(d.path) };
  });
  for (const { name, dir } of downloads) {
    const what = `artifact "${name}"`;
    const target = path.join(opts.workspace, dir);
    const made = await runAsJobUser(opts, ['mkdir', '-p', '--', target]);
    if (!succeeded(made)) throw new Error(`${what}: could not create ${dir} in the workspace: ${describe('mkdir', made)}`);
    let res: Response;
    try {
      res = await fetch(artifactUrl(opts, name), { headers: { authorization: `Bearer ${opts.spec.artifacts.token}` }, signal: opts.signal });
    } catch (err) {
      throw new Error(`${what}: could not download it from ${opts.serverUrl}: ${((err as { cause?: Error }).cause ?? (err as Error)).message}`);
    }
    if (!res.ok || !res.body) throw httpError(`${what}: download failed`, res.status, await res.text().catch(() => ''));
    // GNU tar refuses members that climb out (with "..", through a link) and strips a leading "/".
    const tar = spawnAsJobUser(opts, ['tar', '-xzf', '-', '-C', target, '--no-same-owner'], ['pipe', 'ignore', 'pipe']);
    const ended = finished(tar);
    const piped = pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), tar.stdin!).then(() => undefined, (err: Error) => err);
    const [result, pipeError] = await Promise.all([ended, piped]);
    if (!succeeded(result)) throw new Error(`${what}: could not unpack it into ${dir}: ${describe('tar', result)}`);
    if (pipeError) throw new Error(`${what}: the download broke off: ${pipeError.message}`);
    opts.output(Buffer.from(`Downloaded artifact "${name}" into ${dir}\n`));
  }
}
