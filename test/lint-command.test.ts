import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { furrow } from './helpers/furrow-process.js';

let dir: string;
const GOOD = `name: CI
on: [push, manual]
jobs:
  test:
    strategy:
      matrix:
        node: [18, 20]
    steps:
      - run: npm test
  deploy:
    needs: test
    if: github.branch == 'main'
    steps:
      - run: ./deploy.sh
`;
const BAD = `jobs:
  build:
    timeout-minutes: 0
    stpes:
      - run: make
  test:
    needs: biuld
    steps:
      - run: make test
`;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'furrow-lint-'));
  await writeFile(path.join(dir, 'good.yml'), GOOD);
  await writeFile(path.join(dir, 'bad.yml'), BAD);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('furrow lint', () => {
  it('prints ok with the number of jobs (matrix instances counted) and exits 0', async () => {
    const result = await furrow(['lint', path.join(dir, 'good.yml')], {});
    expect(result).toEqual({ code: 0, stdout: `${path.join(dir, 'good.yml')}: ok (3 jobs); starts on: push (every branch and tag), manual\n`, stderr: '' });
  });

  it('prints each problem as FILE:LINE:COLUMN: message and exits 1', async () => {
    const bad = path.join(dir, 'bad.yml');
    const good = path.join(dir, 'good.yml');
    const result = await furrow(['lint', bad, good], {});
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      [
        `${bad}:2:3: jobs.build needs steps: a list of commands like - run: make test`,
        `${bad}:3:22: jobs.build.timeout-minutes must be a whole number of minutes between 1 and 10080`,
        `${bad}:4:5: unknown key "stpes" in jobs.build (did you mean "steps"?)`,
        `${bad}:7:12: jobs.test.needs names "biuld", which is not a job of this file (jobs: build, test)`,
        '',
      ].join('\n'),
    );
    expect(result.stdout).toBe(`${good}: ok (3 jobs); starts on: push (every branch and tag), manual\n`);
  });

  it('exits 2 without a file or with an unreadable one', async () => {
    const none = await furrow(['lint'], {});
    expect(none.code).toBe(2);
    expect(none.stderr).toBe('furrow lint: name at least one workflow file: furrow lint .furrow/ci.yml\n');
    const missing = path.join(dir, 'missing.yml');
    const unreadable = await furrow(['lint', path.join(dir, 'good.yml'), missing], {});
    expect(unreadable).toEqual({ code: 2, stdout: '', stderr: `furrow lint: cannot read ${missing}: no such file\n` });
  });
});
