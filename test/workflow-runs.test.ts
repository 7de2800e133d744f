import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { jobOutput, runJobs, runOutput } from './helpers/log-output.js';
import { createBareRepo, git, pushCommit, type BareRepo } from './helpers/git-repos.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

const execFileP = promisify(execFile);
let t: TestInstance;
let dir: string;
beforeAll(async () => {
  t = await startTestInstance({ FURROW_LOCAL_RUNNER_CAPACITY: '3' });
  dir = await mkdtemp(path.join(tmpdir(), 'furrow-wf-'));
  // Jobs check out as the unprivileged job user when the tests run as root: it must read the repos.
  await chmod(dir, 0o755);
});
afterAll(async () => {
  await t?.stop();
  await rm(dir, { recursive: true, force: true });
});

// Characters that base64 and URL encoding both change.
const SECRET = 'hunter2/with space+plus&amp';
const urlEncodeInBash = `urlencode() { local s="$1" i c; for ((i=0;i<\${#s};i++)); do c=\${s:i:1}; case "$c" in [a-zA-Z0-9.~_-]) printf %s "$c";; *) printf '%%%02X' "'$c";; esac; done; echo; }`;

function pipeline(marker: string): string {
  return `name: ci
on: manual
env:
  GREETING: hello
jobs:
  build:
    steps:
      - name: build
        run: |
          cat README.md
          mkdir -p dist && echo "built $GREETING at $FURROW_SHA" > dist/out.txt
    artifacts:
      upload: { name: dist, paths: [dist] }
  test:
    needs: build
    strategy:
      matrix:
        n: [1, 2]
    steps:
      - run: cat dist/out.txt && echo "instance $MATRIX_N of \${{ matrix.n }}"
    artifacts:
      download: dist
  flaky:
    needs: build
    steps:
      - run: test -e ${marker} || { touch ${marker}; echo "failing once"; exit 3; }
  after-flaky:
    needs: flaky
    steps:
      - run: cat dist/out.txt
    artifacts:
      download: dist
  cleanup:
    needs: flaky
    if: always()
    steps:
      - run: echo "cleaning after $FURROW_BRANCH"
  secrets:
    steps:
      - run: |
          ${urlEncodeInBash}
          echo "plain $TOKEN"
          printf %s "$TOKEN" | base64
          urlencode "$TOKEN"
      - name: ignored failure
        continue-on-error: true
        run: exit 1
      - name: on failure only
        if: failure()
        run: echo "must not run"
      - run: echo "still going"
`;
}

async function project() {
  const org = await t.api('POST', '/api/v1/organizations', { name: `wf-${randomUUID()}` });
  const proj = await t.api('POST', `/api/v1/organizations/${org.body.id}/projects`, { name: 'p' });
  return proj.body.id as string;
}

async function repository(projectId: string, repo: BareRepo) {
  const res = await t.api('POST', `/api/v1/projects/${projectId}/repositories`, { name: `r-${randomUUID().slice(0, 8)}`, url: repo.url });
  expect(res.status).toBe(201);
  return res.body.id as string;
}

async function jobsOf(runId: string): Promise<any[]> {
  return (await t.api('GET', `/api/v1/runs/${runId}/jobs`)).body.items;
}

/** What a job's steps wrote, without the step markers. */
async function logOf(jobId: string): Promise<string> {
  return jobOutput((await t.api('GET', `/api/v1/jobs/${jobId}/log`)).text);
}

/** The job's log as the live stream gives it, from offset 0 to its end. */
async function liveLog(jobId: string): Promise<string> {
  const ws: WebSocket = await t.live();
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('live log did not end')), 20_000);
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString());
      if (m.type === 'log') chunks.push(Buffer.from(m.data, 'base64'));
      if (m.type === 'log-end') {
        clearTimeout(timer);
        resolve();
      }
    });
    ws.send(JSON.stringify({ type: 'subscribe', channel: 'log', jobId, offset: 0 }));
  });
  ws.close();
  return Buffer.concat(chunks).toString();
}

describe('workflow files from a repository', () => {
  it('runs the DAG in order with the matrix, artifacts, masked secrets, skipped dependants and a re-run of the failed jobs', async () => {
    // In a directory of the test's that every job user may write to, so that the first attempt
    // leaves it for the re-run: what a job leaves at the top of /tmp goes when the job ends.
    const markerDir = await mkdtemp(path.join(tmpdir(), 'furrow-flaky-'));
    await chmod(markerDir, 0o1777);
    const marker = path.join(markerDir, randomUUID());
    onTestFinished(() => rm(markerDir, { recursive: true, force: true }));
    const repo = await createBareRepo(path.join(dir, 'app.git'), { 'README.md': 'readme of the app\n', '.furrow/ci.yml': pipeline(marker) });
    const projectId = await project();
    const repositoryId = await repository(projectId, repo);
    expect((await t.api('POST', `/api/v1/projects/${projectId}/secrets`, { name: 'TOKEN', value: SECRET })).status).toBe(201);
    const wf = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'ci', repositoryId, path: '.furrow/ci.yml' });
    expect(wf.status).toBe(201);

    const started = await t.api('POST', `/api/v1/workflows/${wf.body.id}/runs`, { ref: 'main' });
    expect(started.status).toBe(202);
    const secretsJob = (await jobsOf(started.body.id)).find((j) => j.name === 'secrets');
    const live = liveLog(secretsJob.id);
    const run = await t.waitForRun(started.body.id, 60_000);
    expect(run).toMatchObject({ status: 'failed', commit: repo.commit, ref: 'refs/heads/main' });

    const jobs = await jobsOf(run.id);
    const byName = Object.fromEntries(jobs.map((j) => [j.name, j]));
    expect(Object.keys(byName).sort()).toEqual(['after-flaky', 'build', 'cleanup', 'flaky', 'secrets', 'test (1)', 'test (2)']);
    expect(byName.build.status).toBe('succeeded');
    expect(byName['test (1)'].status).toBe('succeeded');
    expect(byName['test (2)'].status).toBe('succeeded');
    expect(byName.flaky).toMatchObject({ status: 'failed', exitCode: 3 });
    expect(byName['after-flaky'].status).toBe('skipped');
    expect(byName.cleanup.status).toBe('succeeded');
    expect(byName.secrets.status).toBe('succeeded');
    // Dependants start only after what they need has finished.
    for (const name of ['test (1)', 'test (2)', 'flaky']) expect(Date.parse(byName[name].startedAt)).toBeGreaterThanOrEqual(Date.parse(byName.build.finishedAt));
    expect(Date.parse(byName.cleanup.startedAt)).toBeGreaterThanOrEqual(Date.parse(byName.flaky.finishedAt));

    // The checkout, the artifact handed from build to test, the matrix values.
    const buildLog = await logOf(byName.build.id);
    expect(buildLog).toContain('readme of the app');
    expect(byName.build.steps.map((s: any) => [s.name, s.status])).toEqual([['checkout', 'succeeded'], ['build', 'succeeded']]);
    const testLog = await logOf(byName['test (2)'].id);
    expect(testLog).toContain(`built hello at ${repo.commit}`);
    expect(testLog).toContain('instance 2 of 2');
    expect(await logOf(byName.cleanup.id)).toContain('cleaning after main');
    const artifacts = await t.api('GET', `/api/v1/runs/${run.id}/artifacts`);
    expect(artifacts.body.items.map((a: any) => a.name)).toEqual(['dist']);

    // The secret, plainly and encoded, is masked in the stored log and in the live stream.
    const forms = [SECRET, Buffer.from(SECRET).toString('base64'), encodeURIComponent(SECRET)];
    const stored = await logOf(byName.secrets.id);
    const streamed = await live;
    for (const log of [stored, streamed]) {
      expect(log).toContain('plain ***');
      for (const form of forms) expect(log).not.toContain(form);
      expect(log.match(/\*\*\*/g)?.length).toBeGreaterThanOrEqual(3);
    }
    expect(jobOutput(streamed)).toBe(stored);
    // continue-on-error kept the job going; the failure()-only step did not run.
    expect(byName.secrets.steps.map((s: any) => s.status)).toEqual(['succeeded', 'succeeded', 'failed', 'skipped', 'succeeded']); // checkout first
    expect(stored).toContain('still going');
    expect(stored).not.toContain('must not run');

    // Re-run only what failed: build and test keep their outcome, the rest runs again.
    const rerun = await t.api('POST', `/api/v1/runs/${run.id}/rerun`, { failedOnly: true });
    expect(rerun.status).toBe(202);
    const again = await t.waitForRun(rerun.body.id, 60_000);
    expect(again).toMatchObject({ status: 'succeeded', rerunOf: run.id, commit: repo.commit });
    const rerunJobs = Object.fromEntries((await jobsOf(again.id)).map((j) => [j.name, j]));
    // A kept job shows what it did in the first run: its log, its steps, its times.
    expect(rerunJobs.build).toMatchObject({ status: 'succeeded', retryOf: byName.build.id, logSize: byName.build.logSize, startedAt: byName.build.startedAt, finishedAt: byName.build.finishedAt });
    expect(rerunJobs.build.steps.map((s: any) => [s.name, s.status])).toEqual([['checkout', 'succeeded'], ['build', 'succeeded']]);
    expect(await logOf(rerunJobs.build.id)).toBe(buildLog);
    expect(rerunJobs.flaky.status).toBe('succeeded');
    expect(rerunJobs['after-flaky'].status).toBe('succeeded');
    // The kept build's artifact is the re-run's too.
    expect(await logOf(rerunJobs['after-flaky'].id)).toContain(`built hello at ${repo.commit}`);
  });

  it('runs at a given commit, and says where a workflow file is wrong', async () => {
    const repo = await createBareRepo(path.join(dir, 'bad.git'), { '.furrow/ci.yml': 'jobs:\n  a:\n    steps:\n      - run: echo first\n' });
    const projectId = await project();
    const repositoryId = await repository(projectId, repo);
    const wf = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'ci', repositoryId, path: '.furrow/ci.yml' });
    const broken = await pushCommit(repo, { '.furrow/ci.yml': 'jobs:\n  a:\n    stpes:\n      - run: echo\n' });

    const bad = await t.api('POST', `/api/v1/workflows/${wf.body.id}/runs`, {});
    expect(bad.status).toBe(422);
    expect(bad.body.code).toBe('workflow_invalid');
    expect(bad.body.details).toContainEqual(expect.objectContaining({ file: '.furrow/ci.yml', line: 3, column: 5 }));
    expect(bad.body.message).toMatch(/^\.furrow\/ci\.yml:2:3: .*\(and 1 more\)$/); // the first problem in the file

    const atFirst = await t.api('POST', `/api/v1/workflows/${wf.body.id}/runs`, { commit: repo.commit });
    expect(atFirst.status).toBe(202);
    const run = await t.waitForRun(atFirst.body.id);
    expect(run).toMatchObject({ status: 'succeeded', commit: repo.commit });
    expect(broken).not.toBe(repo.commit);

    // A bare name finds a tag too; an annotated tag runs at the commit it points at.
    await git(['-C', repo.path, 'tag', '-a', 'v1', '-m', 'release', repo.commit]);
    const tagged = await t.waitForRun((await t.api('POST', `/api/v1/workflows/${wf.body.id}/runs`, { ref: 'v1' })).body.id);
    expect(tagged).toMatchObject({ status: 'succeeded', ref: 'refs/tags/v1', commit: repo.commit });

    const unknown = await t.api('POST', `/api/v1/workflows/${wf.body.id}/runs`, { ref: 'no-such-branch' });
    expect(unknown.status).toBe(422);
    expect(unknown.body.code).toBe('ref_not_found');
    expect((await t.api('GET', `/api/v1/projects/${projectId}/runs`)).body.items).toHaveLength(2); // nothing half-written
  });

  it('refuses a YAML definition with line and column, and runs a valid one without a repository', async () => {
    const projectId = await project();
    const bad = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'w', definition: 'jobs:\n  a:\n    needs: b\n    steps:\n      - run: true\n' });
    expect(bad.status).toBe(422);
    expect(bad.body.details[0]).toMatchObject({ line: 3, column: 12 });
    expect((await t.api('GET', `/api/v1/projects/${projectId}/workflows`)).body.items).toEqual([]);
    const two = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'w', script: 'true', definition: 'jobs: {}' });
    expect(two.status).toBe(400);

    const wf = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, {
      name: 'w',
      definition: 'jobs:\n  one:\n    steps:\n      - run: echo one\n  two:\n    needs: one\n    if: furrow.event == \'push\'\n    steps:\n      - run: echo two\n  three:\n    needs: one\n    steps:\n      - run: echo three\n',
    });
    expect(wf.status).toBe(201);
    const run = await t.waitForRun((await t.api('POST', `/api/v1/workflows/${wf.body.id}/runs`, {})).body.id);
    expect(run.status).toBe('succeeded');
    expect((await jobsOf(run.id)).map((j) => [j.name, j.status])).toEqual([['one', 'succeeded'], ['two', 'skipped'], ['three', 'succeeded']]);
    // The run's log is its jobs' logs one after the other, each after its header; an offset counts through them.
    const whole = (await t.api('GET', `/api/v1/runs/${run.id}/log`)).text;
    const ids = (await jobsOf(run.id)).map((j) => j.id);
    expect(runJobs(whole).map((j) => [j.jobId, j.title, jobOutput(j.log)])).toEqual([
      [ids[0], 'one (attempt 1)', 'one\n'],
      [ids[1], 'two (attempt 1)', ''],
      [ids[2], 'three (attempt 1)', 'three\n'],
    ]);
    const at = whole.lastIndexOf('three\n') + 1;
    expect((await t.api('GET', `/api/v1/runs/${run.id}/log?offset=${at}`)).text).toBe(whole.slice(at));

    // Re-running the whole run runs every job again, from the stored plan.
    const again = await t.waitForRun((await t.api('POST', `/api/v1/runs/${run.id}/rerun`, {})).body.id);
    expect(again).toMatchObject({ status: 'succeeded', rerunOf: run.id, number: run.number + 1 });
    const rerunJobs = await jobsOf(again.id);
    expect(rerunJobs.map((j) => [j.name, j.status, j.retryOf])).toEqual([['one', 'succeeded', null], ['two', 'skipped', null], ['three', 'succeeded', null]]);
    expect(runOutput((await t.api('GET', `/api/v1/runs/${again.id}/log`)).text)).toBe('one\nthree\n');
    expect((await t.api('POST', `/api/v1/runs/${again.id}/rerun`, { failedOnly: true })).body.code).toBe('conflict'); // nothing failed

    // Inputs: defaults fill in, required and choice inputs are checked; a push-only workflow is not started by hand.
    const inputs = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, {
      name: 'inputs',
      definition: 'on:\n  manual:\n    inputs:\n      LEVEL: {default: info, options: [info, debug]}\n      TARGET: {required: true}\njobs:\n  show:\n    steps:\n      - run: echo "$LEVEL $TARGET"\n',
    });
    const missing = await t.api('POST', `/api/v1/workflows/${inputs.body.id}/runs`, {});
    expect(missing.body).toMatchObject({ code: 'validation_failed', details: [{ field: 'parameters.TARGET', message: 'is required' }] });
    const badChoice = await t.api('POST', `/api/v1/workflows/${inputs.body.id}/runs`, { parameters: { TARGET: 'x', LEVEL: 'loud' } });
    expect(badChoice.body.details).toEqual([{ field: 'parameters.LEVEL', message: 'must be one of info, debug' }]);
    const shown = await t.waitForRun((await t.api('POST', `/api/v1/workflows/${inputs.body.id}/runs`, { parameters: { TARGET: 'staging' } })).body.id);
    expect(runOutput((await t.api('GET', `/api/v1/runs/${shown.id}/log`)).text)).toBe('info staging\n');
    const pushOnly = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'push-only', definition: 'on: push\njobs:\n  a:\n    steps:\n      - run: true\n' });
    expect((await t.api('POST', `/api/v1/workflows/${pushOnly.body.id}/runs`, {})).body.code).toBe('not_manual');

    // A run whose every job is skipped is skipped.
    const none = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'never', definition: "jobs:\n  only:\n    if: furrow.event == 'push'\n    steps:\n      - run: echo no\n" });
    const skipped = await t.waitForRun((await t.api('POST', `/api/v1/workflows/${none.body.id}/runs`, {})).body.id);
    expect(skipped.status).toBe('skipped');
  });

  it('holds a job in a protected environment until a manager approves it', async () => {
    const projectId = await project();
    const env = await t.api('POST', `/api/v1/projects/${projectId}/environments`, { name: 'production', requiresApproval: true, variables: { TARGET: 'prod' } });
    expect(env.body.requiresApproval).toBe(true);
    const wf = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, {
      name: 'deploy',
      definition: 'jobs:\n  deploy:\n    environment: production\n    steps:\n      - run: echo "deploying to $TARGET"\n',
    });
    const started = await t.api('POST', `/api/v1/workflows/${wf.body.id}/runs`, {});
    const [job] = await jobsOf(started.body.id);
    expect(job).toMatchObject({ status: 'waiting', approval: 'pending' });
    await new Promise((r) => setTimeout(r, 500));
    expect((await jobsOf(started.body.id))[0].status).toBe('waiting'); // no runner took it

    const member = await t.member({ projectId }, 'member');
    expect((await t.api('POST', `/api/v1/jobs/${job.id}/approve`, undefined, member.token)).status).toBe(403);
    expect((await t.api('POST', `/api/v1/jobs/${job.id}/approve`)).status).toBe(200);
    const run = await t.waitForRun(started.body.id);
    expect(run.status).toBe('succeeded');
    expect(await logOf(job.id)).toContain('deploying to prod');
    expect((await t.api('POST', `/api/v1/jobs/${job.id}/approve`)).body.code).toBe('approval_not_pending');
  });

  it('runs matrix instances one at a time under max-parallel and cancels the rest when one fails', async () => {
    const projectId = await project();
    const wf = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, {
      name: 'matrix',
      definition: `jobs:
  m:
    strategy:
      max-parallel: 1
      matrix:
        n: [1, 2, 3]
    steps:
      - run: sleep 0.3 && test "$MATRIX_N" != 2
`,
    });
    expect(wf.status).toBe(201);
    const run = await t.waitForRun((await t.api('POST', `/api/v1/workflows/${wf.body.id}/runs`, {})).body.id);
    expect(run.status).toBe('failed');
    const jobs = Object.fromEntries((await jobsOf(run.id)).map((j) => [j.name, j]));
    expect([jobs['m (1)'].status, jobs['m (2)'].status, jobs['m (3)'].status]).toEqual(['succeeded', 'failed', 'canceled']);
    expect(jobs['m (3)'].startedAt).toBeNull(); // fail-fast (the default) canceled it before it started
    expect(Date.parse(jobs['m (2)'].startedAt)).toBeGreaterThanOrEqual(Date.parse(jobs['m (1)'].finishedAt));
  });

  it('runs one job of a concurrency group at a time, and cancel-in-progress cancels the older run', async () => {
    const projectId = await project();
    const definition = (cancel: boolean) => `jobs:
  deploy:
    concurrency: { group: production, cancel-in-progress: ${cancel} }
    steps:
      - run: sleep 0.5
`;
    const queued = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'queued', definition: definition(false) });
    const [a, b] = await Promise.all([1, 2].map(() => t.api('POST', `/api/v1/workflows/${queued.body.id}/runs`, {})));
    await Promise.all([t.waitForRun(a!.body.id), t.waitForRun(b!.body.id)]);
    const [ja, jb] = [(await jobsOf(a!.body.id))[0], (await jobsOf(b!.body.id))[0]];
    const [first, second] = Date.parse(ja.startedAt) < Date.parse(jb.startedAt) ? [ja, jb] : [jb, ja];
    expect(Date.parse(second.startedAt)).toBeGreaterThanOrEqual(Date.parse(first.finishedAt));

    const cancelling = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'cancelling', definition: definition(true).replace('sleep 0.5', 'sleep 5') });
    const older = await t.api('POST', `/api/v1/workflows/${cancelling.body.id}/runs`, {});
    for (let i = 0; i < 100 && (await jobsOf(older.body.id))[0].status !== 'running'; i++) await new Promise((r) => setTimeout(r, 50));
    const newer = await t.api('POST', `/api/v1/workflows/${cancelling.body.id}/runs`, {});
    expect((await t.waitForRun(older.body.id)).status).toBe('canceled');
    expect((await t.waitForRun(newer.body.id, 30_000)).status).toBe('succeeded');
  });

  it('loads SSH secrets into the job’s own ssh-agent', async () => {
    const projectId = await project();
    const keyDir = await mkdtemp(path.join(tmpdir(), 'furrow-key-'));
    await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'deploy@furrow', '-f', path.join(keyDir, 'k')]);
    const key = await readFile(path.join(keyDir, 'k'), 'utf8');
    await rm(keyDir, { recursive: true, force: true });
    expect((await t.api('POST', `/api/v1/projects/${projectId}/secrets`, { name: 'DEPLOY_KEY', kind: 'ssh', value: key })).status).toBe(201);
    const wf = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'ssh', script: 'ssh-add -l && test -S "$SSH_AUTH_SOCK" && test -z "${DEPLOY_KEY:-}"' });
    const run = await t.waitForRun((await t.api('POST', `/api/v1/workflows/${wf.body.id}/runs`, {})).body.id);
    const log = await logOf((await jobsOf(run.id))[0].id);
    expect(run.status, log).toBe('succeeded');
    expect(log).toMatch(/256 SHA256:\S+ deploy@furrow \(ED25519\)/);
  });
});
