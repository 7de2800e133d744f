import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
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

/** `p` made relative to the workspace; throws for a path that is absolute or climbs out of it. */
function insideWorkspace(artifact: string, p: string): string {
  if (path.posix.isAbsolute(p) || p.split('/').includes('..')) {
    throw new Error(`artifact "${artifact}": "${p}" must be a path inside the workspace (relative, without "..")`);
  }
  return path.posix.normalize(p);
}

/** What an upload path names: a file or directory; a trailing `/**` names the directory itself. */
function uploadPath(artifact: string, p: string): string {
  const plain = p.endsWith('/**') ? p.slice(0, -3) || '.' : p;
  if (/[*?[]/.test(plain)) throw new Error(`artifact "${artifact}": "${p}" is a pattern; name files or directories (a trailing "/**" means a whole directory)`);
  return insideWorkspace(artifact, plain);
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
async function httpError(res: Response, what: string): Promise<Error> {
  const text = await res.text().catch(() => '');
  let message = text.trim();
  try {
    message = (JSON.parse(text) as { message?: string }).message ?? message;
  } catch {
    // not JSON: the text as it came
  }
  return new Error(`${what}: HTTP ${res.status}${message ? `: ${message}` : ''}`);
}

function artifactUrl(opts: ArtifactOptions, name: string): string {
  return `${opts.serverUrl.replace(/\/$/, '')}/api/v1/jobs/${opts.spec.jobId}/artifacts/${encodeURIComponent(name)}`;
}

const cause = (err: unknown) => ((err as { cause?: Error }).cause ?? (err as Error)).message;

/** Archives `paths` with tar as the job user and streams the archive to the server; returns its size. */
async function uploadOne(opts: ArtifactOptions, name: string, paths: string[]): Promise<number> {
  const what = `artifact "${name}"`;
  const tar = spawnAsJobUser(opts, ['tar', '-czf', '-', '-C', opts.workspace, '--', ...paths], ['ignore', 'pipe', 'pipe']);
  const ended = finished(tar);
  let tarError: Error | undefined;
  const breakOff = new AbortController();
  // The body ends only after tar succeeded. A failing tar aborts the request, which closes its
  // connection: the server sees the upload break off and keeps nothing (an errored body alone
  // may leave a reused connection open, the server waiting for the rest).
  async function* archive() {
    yield* tar.stdout!;
    const result = await ended;
    if (!succeeded(result)) {
      tarError = new Error(`${what}: ${describe('tar', result)}`);
      breakOff.abort(tarError);
      throw tarError;
    }
  }
  // Once the answer is in, nobody reads the archive any more: tar ends only when its pipe is gone.
  const stop = () => {
    tar.stdout!.destroy();
    tar.kill('SIGKILL');
    return ended;
  };
  // A streamed body needs `duplex: 'half'`, which the RequestInit type does not declare yet.
  const init: RequestInit & { duplex: 'half' } = {
    method: 'PUT',
    headers: { authorization: `Bearer ${opts.spec.artifacts.token}`, 'content-type': 'application/gzip' },
    // Node's and the global ReadableStream types differ in name only.
    body: Readable.toWeb(Readable.from(archive())) as globalThis.ReadableStream<Uint8Array>,
    duplex: 'half',
    signal: AbortSignal.any([opts.signal, breakOff.signal]),
  };
  let res: Response;
  try {
    res = await fetch(artifactUrl(opts, name), init);
  } catch (err) {
    await stop();
    throw tarError ?? new Error(`${what}: could not upload it to ${opts.serverUrl}: ${cause(err)}`);
  }
  if (!res.ok) {
    // Read before stopping: a broken-off upload takes the answer's body down with it.
    const error = await httpError(res, `${what}: upload failed`);
    await stop();
    throw error;
  }
  return ((await res.json()) as { size: number }).size;
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
  const downloads = opts.spec.artifacts.download.map((d) => ({ name: d.name, dir: insideWorkspace(d.name, d.path) }));
  for (const { name, dir } of downloads) {
    const what = `artifact "${name}"`;
    const target = path.join(opts.workspace, dir);
    const made = await runAsJobUser(opts, ['mkdir', '-p', '--', target]);
    if (!succeeded(made)) throw new Error(`${what}: could not create ${dir} in the workspace: ${describe('mkdir', made)}`);
    let res: Response;
    try {
      res = await fetch(artifactUrl(opts, name), { headers: { authorization: `Bearer ${opts.spec.artifacts.token}` }, signal: opts.signal });
    } catch (err) {
      throw new Error(`${what}: could not download it from ${opts.serverUrl}: ${cause(err)}`);
    }
    if (!res.ok || !res.body) throw await httpError(res, `${what}: download failed`);
    // GNU tar refuses members that climb out with "..": the archive cannot write outside `target`.
    const tar = spawnAsJobUser(opts, ['tar', '-xzf', '-', '-C', target, '--no-same-owner'], ['pipe', 'ignore', 'pipe']);
    const ended = finished(tar);
    const piped = pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), tar.stdin!).then(() => undefined, (err: Error) => err);
    const [result, pipeError] = await Promise.all([ended, piped]);
    if (!succeeded(result)) throw new Error(`${what}: could not unpack it into ${dir}: ${describe('tar', result)}`);
    if (pipeError) throw new Error(`${what}: the download broke off: ${pipeError.message}`);
    opts.output(Buffer.from(`Downloaded artifact "${name}" into ${dir}\n`));
  }
}
