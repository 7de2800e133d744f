import { describe, expect, it } from 'vitest';
import { compileWorkflow } from './compile-workflow.js';
import type { CompiledJob } from './workflow-model.js';

const yaml = (...lines: string[]) => `${lines.join('\n')}\n`;

/** The problems as `LINE:COLUMN: message`. */
function problems(text: string): string[] {
  const result = compileWorkflow(text, 'ci.yml');
  if (result.problems.length > 0) expect(result.workflow).toBeUndefined();
  return result.problems.map((p) => `${p.line}:${p.column}: ${p.message}`);
}

function compile(text: string) {
  const { workflow, problems } = compileWorkflow(text, '.furrow/ci.yml');
  expect(problems).toEqual([]);
  return workflow!;
}

const job = (overrides: Partial<CompiledJob>): CompiledJob => ({
  id: '',
  key: '',
  name: '',
  needs: [],
  runsOn: [],
  if: null,
  matrix: null,
  env: {},
  steps: [],
  timeoutSeconds: null,
  continueOnError: false,
  retry: null,
  image: null,
  environment: null,
  concurrency: null,
  maxParallel: null,
  failFast: false,
  checkout: { enabled: true, depth: 1 },
  upload: [],
  download: [],
  ...overrides,
});

describe('compileWorkflow', () => {
  it('compiles a realistic workflow to its jobs', () => {
    const workflow = compile(
      yaml(
        'name: CI',
        'on:',
        '  push:',
        '    branches: [main, "release/*"]',
        '    paths-ignore: docs/**',
        '  tag:',
        '  schedule:',
        "    - cron: '0 3 * * *'",
        '      timezone: Europe/Berlin',
        '  workflow_dispatch:',
        '    inputs:',
        '      level: {description: Log level, default: info, options: [info, debug]}',
        'env:',
        '  NODE_ENV: test',
        '  RETRIES: 3',
        '  VERSION: 1.10',
        'concurrency: ci',
        'jobs:',
        '  build:',
        '    runs-on: linux',
        '    image: node:20',
        '    timeout-minutes: 15',
        '    env: {NODE_ENV: production}',
        '    checkout: {depth: 0}',
        '    steps:',
        '      - run: npm ci',
        '      - name: Build',
        '        run: |',
        '          npm run build',
        '          npm pack',
        '        timeout-minutes: 5',
        '        env: {CI_LOG: "1"}',
        '    artifacts:',
        '      upload: {name: dist, paths: [dist/, furrow.tgz]}',
        '  deploy:',
        '    name: Deploy to production',
        '    needs: build',
        "    if: github.branch == 'main'",
        '    runs-on: [linux, deploy]',
        '    environment: {name: production}',
        '    retry: 2',
        '    continue-on-error: true',
        '    checkout: false',
        '    concurrency: {group: deploy, cancel-in-progress: true}',
        '    steps:',
        '      - run: ./deploy.sh "a rather long first line that goes on and on and on and on"',
        '        if: always()',
        '        continue-on-error: true',
        '    artifacts:',
        '      download: {name: dist, path: out}',
      ),
    );
    expect(workflow.name).toBe('CI');
    expect(workflow.on).toEqual({
      push: { branches: ['main', 'release/*'], branchesIgnore: [], tags: ['*'], tagsIgnore: [], paths: [], pathsIgnore: ['docs/**'] },
      schedule: [{ cron: '0 3 * * *', timezone: 'Europe/Berlin' }],
      pullRequest: null,
      delete: null,
      webhook: null,
      manual: { inputs: { level: { description: 'Log level', required: false, default: 'info', options: ['info', 'debug'] } } },
      workflowRun: null,
    });
    expect(workflow.env).toEqual({ NODE_ENV: 'test', RETRIES: '3', VERSION: '1.10' });
    expect(workflow.concurrency).toEqual({ group: 'ci', cancelInProgress: false });
    expect(workflow.jobs).toEqual([
      job({
        id: 'build',
        key: 'build',
        name: 'build',
        runsOn: ['linux'],
        image: 'node:20',
        timeoutSeconds: 900,
        env: { NODE_ENV: 'production', RETRIES: '3', VERSION: '1.10' },
        concurrency: { group: 'ci', cancelInProgress: false }, // the workflow's, as it names none
        checkout: { enabled: true, depth: 0 },
        steps: [
          { name: 'npm ci', run: 'npm ci', env: {}, timeoutSeconds: null, continueOnError: false, if: null },
          { name: 'Build', run: 'npm run build\nnpm pack\n', env: { CI_LOG: '1' }, timeoutSeconds: 300, continueOnError: false, if: null },
        ],
        upload: [{ name: 'dist', paths: ['dist/', 'furrow.tgz'] }],
      }),
      job({
        id: 'deploy',
        key: 'deploy',
        name: 'Deploy to production',
        needs: ['build'],
        if: "github.branch == 'main'",
        runsOn: ['linux', 'deploy'],
        environment: 'production',
        retry: { count: 2, on: ['failed', 'timed_out', 'runner_lost'] },
        continueOnError: true,
        checkout: { enabled: false, depth: 1 },
        concurrency: { group: 'deploy', cancelInProgress: true },
        env: { NODE_ENV: 'test', RETRIES: '3', VERSION: '1.10' },
        steps: [
          {
            name: './deploy.sh "a rather long first line that goes on and on a…',
            run: './deploy.sh "a rather long first line that goes on and on and on and on"',
            env: {},
            timeoutSeconds: null,
            continueOnError: true,
            if: 'always()',
          },
        ],
        download: [{ name: 'dist', path: 'out' }],
      }),
    ]);
    expect(workflow.jobs[1]!.steps[0]!.name).toHaveLength(60);
  });

  it('without on, a workflow is started by hand only', () => {
    const workflow = compile(yaml('jobs:', '  test:', '    steps: [{run: make test}]'));
    expect(workflow.on).toEqual({ push: null, pullRequest: null, delete: null, schedule: [], webhook: null, manual: { inputs: {} }, workflowRun: null });
  });

  it('reads triggers given as a list of names', () => {
    const workflow = compile(yaml('on: [tag, webhook, manual]', 'jobs:', '  a: {steps: [{run: x}]}'));
    expect(workflow.on.push?.tags).toEqual(['*']);
    expect(workflow.on.push?.branches).toEqual([]);
    expect(workflow.on.webhook).toEqual({ events: [] });
    expect(workflow.on.manual).toEqual({ inputs: {} });
    // A plain push matches every branch and tag; `tag` must not narrow it to tags.
    const both = compile(yaml('on: [push, tag]', 'jobs:', '  a: {steps: [{run: x}]}'));
    expect(both.on.push).toEqual({ branches: [], branchesIgnore: [], tags: [], tagsIgnore: [], paths: [], pathsIgnore: [] });
  });

  it('expands a matrix with include, exclude, max-parallel and fail-fast', () => {
    const workflow = compile(
      yaml(
        'jobs:',
        '  test:',
        '    name: Test on ${{ matrix.os }}',
        '    runs-on: ${{ matrix.os }}',
        '    strategy:',
        '      max-parallel: 2',
        '      fail-fast: false',
        '      matrix:',
        '        os: [linux, mac]',
        '        node: [18, 20]',
        '        exclude: [{os: mac, node: 18}]',
        '        include:',
        '          - {os: linux, node: 20, coverage: true}',
        '          - {os: windows, node: 20}',
        '    env: {TARGET: "${{ matrix.os }}-${{ matrix.node }}"}',
        '    concurrency: test-${{ matrix.os }}',
        '    steps:',
        '      - run: npm test ${{ matrix.coverage }}',
        '    artifacts:',
        '      upload: {name: "report-${{ matrix.os }}-${{ matrix.node }}", paths: ["reports/${{ matrix.os }}"]}',
        '  lint:',
        '    strategy:',
        '      matrix: {tool: [eslint, tsc]}',
        '    steps: [{run: "npx ${{ matrix.tool }}"}]',
      ),
    );
    const summary = workflow.jobs.map((j) => ({ key: j.key, name: j.name, runsOn: j.runsOn, env: j.env, run: j.steps[0]!.run, upload: j.upload, group: j.concurrency?.group }));
    expect(summary).toEqual([
      {
        key: 'test (os=linux, node=18)',
        name: 'Test on linux',
        runsOn: ['linux'],
        env: { TARGET: 'linux-18' },
        run: 'npm test ',
        upload: [{ name: 'report-linux-18', paths: ['reports/linux'] }],
        group: 'test-linux',
      },
      {
        key: 'test (os=linux, node=20, coverage=true)',
        name: 'Test on linux',
        runsOn: ['linux'],
        env: { TARGET: 'linux-20' },
        run: 'npm test true',
        upload: [{ name: 'report-linux-20', paths: ['reports/linux'] }],
        group: 'test-linux',
      },
      {
        key: 'test (os=mac, node=20)',
        name: 'Test on mac',
        runsOn: ['mac'],
        env: { TARGET: 'mac-20' },
        run: 'npm test ',
        upload: [{ name: 'report-mac-20', paths: ['reports/mac'] }],
        group: 'test-mac',
      },
      {
        key: 'test (os=windows, node=20)',
        name: 'Test on windows',
        runsOn: ['windows'],
        env: { TARGET: 'windows-20' },
        run: 'npm test ',
        upload: [{ name: 'report-windows-20', paths: ['reports/windows'] }],
        group: 'test-windows',
      },
      { key: 'lint (tool=eslint)', name: 'lint (eslint)', runsOn: [], env: {}, run: 'npx eslint', upload: [], group: undefined },
      { key: 'lint (tool=tsc)', name: 'lint (tsc)', runsOn: [], env: {}, run: 'npx tsc', upload: [], group: undefined },
    ]);
    expect(workflow.jobs[1]!.matrix).toEqual({ os: 'linux', node: '20', coverage: 'true' });
    expect(workflow.jobs.slice(0, 4).map((j) => [j.maxParallel, j.failFast])).toEqual(Array(4).fill([2, false]));
    expect(workflow.jobs.slice(4).map((j) => [j.maxParallel, j.failFast])).toEqual(Array(2).fill([null, true]));
  });

  it('reports an unknown key at its line and column, with a suggestion', () => {
    expect(problems(yaml('jobs:', '  build:', '    runs-on: linux', '    stpes:', '      - run: make'))).toEqual([
      '2:3: jobs.build needs steps: a list of commands like - run: make test',
      '4:5: unknown key "stpes" in jobs.build (did you mean "steps"?)',
    ]);
    expect(problems(yaml('nmae: x', 'jobs:', '  a:', '    steps:', '      - run: make', '        shell: bash'))).toEqual([
      '1:1: unknown key "nmae" at the top level (did you mean "name"?)',
      '6:9: unknown key "shell" in jobs.a.steps[0] (allowed: name, run, env, timeout-minutes, continue-on-error, if)',
    ]);
  });

  it('reports YAML syntax errors at their position', () => {
    const result = compileWorkflow(yaml('jobs:', '  build:', '    steps: [', '  test: {}'), 'ci.yml');
    expect(result.workflow).toBeUndefined();
    expect(result.problems).toEqual([
      { file: 'ci.yml', line: 4, column: 3, message: 'YAML: Flow sequence in block collection must be sufficiently indented and end with a ]' },
    ]);
    expect(problems(yaml('jobs:', '  a: {steps: [{run: x}]}', '  a: {steps: [{run: y}]}'))).toEqual(['3:3: YAML: Map keys must be unique']);
  });

  it('reports a cycle in needs once, naming it', () => {
    expect(
      problems(
        yaml(
          'jobs:',
          '  a: {needs: c, steps: [{run: x}]}',
          '  b: {needs: a, steps: [{run: x}]}',
          '  c: {needs: [b], steps: [{run: x}]}',
          '  d: {needs: [d, biuld], steps: [{run: x}]}',
        ),
      ),
    ).toEqual([
      '3:14: jobs.b.needs forms a cycle: a -> c -> b -> a; a job cannot wait for itself',
      '5:15: jobs.d.needs forms a cycle: d -> d; a job cannot wait for itself',
      '5:18: jobs.d.needs names "biuld", which is not a job of this file (jobs: a, b, c, d)',
    ]);
  });

  it('reports timeouts that are not whole minutes in range', () => {
    expect(problems(yaml('jobs:', '  a:', '    timeout-minutes: 0', '    steps:', '      - run: x', '        timeout-minutes: 1.5', '  b:', '    timeout-minutes: 10081', '    steps: [{run: x}]'))).toEqual([
      '3:22: jobs.a.timeout-minutes must be a whole number of minutes between 1 and 10080',
      '6:26: jobs.a.steps[0].timeout-minutes must be a whole number of minutes between 1 and 10080',
      '8:22: jobs.b.timeout-minutes must be a whole number of minutes between 1 and 10080',
    ]);
  });

  it('rejects steps with uses, pointing at the key', () => {
    expect(problems(yaml('jobs:', '  a:', '    steps:', '      - uses: actions/checkout@v4', '      - run: make'))).toEqual([
      '4:9: steps with `uses` are not supported; write the commands in `run` (the repository is checked out before the first step)',
    ]);
  });

  it('reports a download that no needed job uploads', () => {
    expect(
      problems(
        yaml(
          'jobs:',
          '  build:',
          '    steps: [{run: make}]',
          '    artifacts: {upload: {name: dist, paths: [dist]}}',
          '  docs:',
          '    steps: [{run: make docs}]',
          '    artifacts: {upload: {name: site, paths: [site]}}',
          '  test:',
          '    needs: docs',
          '    steps: [{run: make test}]',
          '    artifacts: {download: [dist, site, {name: nope, path: x}]}',
        ),
      ),
    ).toEqual([
      '11:28: artifact "dist" is not uploaded by a job that test needs; build uploads it: add it to jobs.test.needs',
      '11:47: artifact "nope" is not uploaded by a job that test needs (they upload: site)',
    ]);
  });

  it('requires unique upload names, per matrix instance too', () => {
    expect(
      problems(
        yaml(
          'jobs:',
          '  a:',
          '    strategy: {matrix: {os: [linux, mac]}}',
          '    steps: [{run: make}]',
          '    artifacts: {upload: {name: dist, paths: [dist]}}',
          '  b:',
          '    steps: [{run: make}]',
          '    artifacts: {upload: [{name: "out-linux", paths: [a]}, {name: "bad name", paths: [/etc]}]}',
          '  c:',
          '    strategy: {matrix: {os: [linux]}}',
          '    steps: [{run: make}]',
          '    artifacts: {upload: {name: "out-${{ matrix.os }}", paths: [../x]}}',
        ),
      ),
    ).toEqual([
      '5:32: jobs.a.artifacts.upload.name "dist" is the same for every matrix instance; put ${{ matrix.<axis> }} in it so each instance uploads its own artifact',
      '8:66: jobs.b.artifacts.upload[1].name "bad name" must be 1 to 100 letters, digits, ".", "_" or "-"',
      '8:86: jobs.b.artifacts.upload[1].paths[0] "/etc" must be a path relative to the workspace, without ".."',
      '12:32: artifact "out-linux" is uploaded by b and by c (os=linux); upload names must be unique in a workflow',
      '12:64: jobs.c.artifacts.upload.paths[0] "../x" must be a path relative to the workspace, without ".."',
    ]);
  });

  it('reports expressions it cannot expand, at the expression', () => {
    expect(
      problems(
        yaml(
          'jobs:',
          '  a:',
          '    strategy: {matrix: {os: [linux]}}',
          '    env: {SHA: "${{ github.sha }}"}',
          '    steps:',
          '      - run: echo ${{ matrix.oss }} ${{ secrets.TOKEN }}',
          '  b:',
          '    steps: [{run: "echo ${{ matrix.os }}"}]',
        ),
      ),
    ).toEqual([
      '4:17: jobs.a.env.SHA uses ${{ github.sha }}, which is not expanded: only ${{ matrix.* }} is expanded here; use the environment variables FURROW_BRANCH, FURROW_SHA, FURROW_REF, FURROW_EVENT … in scripts (see docs/workflows.md)',
      '6:19: jobs.a.steps[0].run uses ${{ matrix.oss }}, but the matrix has no "oss" (did you mean "os"?)',
      '6:37: jobs.a.steps[0].run uses ${{ secrets.TOKEN }}, which is not expanded: secrets reach the job as environment variables (or an ssh-agent); read them as $NAME in scripts',
      '8:25: jobs.b.steps[0].run uses ${{ matrix.os }}, but there is no strategy.matrix here',
    ]);
  });

  it('reads workflow_run, and names what is wrong with one', () => {
    const wf = compile(yaml('on:', '  workflow_run: {workflows: [build, test], statuses: [succeeded], branches: [main, "release/*"]}', 'jobs:', '  a:', '    steps: [{run: x}]'));
    expect(wf.on.workflowRun).toEqual({ workflows: ['build', 'test'], statuses: ['succeeded'], branches: ['main', 'release/*'] });
    expect(problems(yaml('on:', '  workflow_run: {workflows: [], statuses: [sucess]}', 'jobs:', '  a:', '    steps: [{run: x}]'))).toEqual([
      '2:29: on.workflow_run.workflows needs the name of at least one workflow of the project',
      '2:43: on.workflow_run.statuses has "sucess", which is no status a run ends with (allowed: succeeded, failed, canceled, timed_out, skipped)',
    ]);
  });

  it('reads a supersede group, and refuses one that also cancels in progress', () => {
    const wf = compile(yaml('concurrency: {group: deploy, supersede: true}', 'jobs:', '  a:', '    steps: [{run: x}]', '  b:', '    concurrency: {group: other, supersede: false}', '    steps: [{run: x}]'));
    expect(wf.jobs.map((j) => j.concurrency)).toEqual([
      { group: 'deploy', cancelInProgress: false, supersede: true },
      { group: 'other', cancelInProgress: false },
    ]);
    expect(problems(yaml('concurrency: {group: deploy, cancel-in-progress: true, supersede: true}', 'jobs:', '  a:', '    steps: [{run: x}]'))).toEqual([
      '1:67: concurrency takes cancel-in-progress or supersede, not both',
    ]);
  });

  it('reports invalid if expressions, triggers and settings, all at once', () => {
    expect(
      problems(
        yaml(
          'on:',
          '  issue_comment: {}',
          '  pull_request: {types: [opened, merged]}',
          '  schedule: [{cron: "0 3 * *"}, {cron: "61 * * * *"}]',
          'jobs:',
          '  "bad id":',
          "    if: furrow.branch = 'main'",
          '    retry: {count: 11, on: [failed, lost]}',
          '    runs-on: [linux, "two words"]',
          '    image: "-debian"',
          '    strategy: {matrix: {n: [1, 1]}}',
          '    steps: [{run: x, continue-on-error: yes}]',
        ),
      ),
    ).toEqual([
      '2:3: unknown trigger "issue_comment" in on (allowed: push, tag, pull_request, delete, schedule, webhook, manual, workflow_dispatch, workflow_run)',
      '3:25: on.pull_request.types has "merged", which is no pull request action (allowed: opened, synchronize, reopened, closed, edited)',
      '4:21: on.schedule[0].cron "0 3 * *" has 4 fields; write 5 (minute hour day month weekday), 6 with seconds first, or a macro such as @daily',
      '4:40: on.schedule[1].cron "61 * * * *" is not a cron expression: invalid value for minute: 61',
      '6:3: job id "bad id" must start with a letter or _ and contain only letters, digits, _ and -',
      '7:9: jobs.bad id.if: unexpected "=" at column 15 of the expression',
      '8:20: jobs.bad id.retry.count must be a whole number of attempts between 0 and 10',
      '8:37: jobs.bad id.retry.on has "lost"; a retry is for failed, timed_out, runner_lost',
      '9:22: jobs.bad id.runs-on[1] label "two words" must be 1 to 64 letters, digits, ".", "_", ":" or "-"',
      '10:12: jobs.bad id.image "-debian" is not a container image name (a letter or digit, then letters, digits and . _ / : @ -, at most 512)',
      '11:32: jobs.bad id.strategy.matrix.n lists "1" twice',
      '12:41: jobs.bad id.steps[0].continue-on-error must be true or false',
    ]);
  });

  it('limits a matrix to 256 jobs', () => {
    const axis = `[${Array.from({ length: 17 }, (_, i) => i).join(', ')}]`;
    expect(problems(yaml('jobs:', '  a:', `    strategy: {matrix: {x: ${axis}, y: ${axis}}}`, '    steps: [{run: x}]'))).toEqual([
      '3:24: jobs.a.strategy.matrix expands to 289 jobs; at most 256 are allowed',
    ]);
  });

  it('reports an empty file and a missing jobs map', () => {
    expect(problems('')).toEqual(['1:1: the file is empty; a workflow needs at least jobs: with one job and its steps']);
    expect(problems(yaml('name: x'))).toEqual(['1:1: the workflow needs jobs: a map of job ids to jobs']);
    expect(problems(yaml('jobs: {}'))).toEqual(['1:7: jobs must have at least one job']);
  });
});
