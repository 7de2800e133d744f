import { describe, expect, it } from 'vitest';
import { keptInstances } from './rerun-keep.js';

const j = (key: string, status: string, needs: string[] = [], instance = key) => ({ jobKey: key, instanceKey: instance, status, needs });

describe('what a failed-only re-run keeps', () => {
  it('keeps successes whose needs are all kept, and runs again whatever follows a job that runs again', () => {
    const jobs = [
      j('build', 'succeeded'),
      j('test', 'succeeded', ['build'], 'test (1)'),
      j('test', 'failed', ['build'], 'test (2)'),
      j('report', 'succeeded', ['test']), // an always() job after the failed test: runs again
      j('lint', 'succeeded', ['build']),
      j('deploy', 'skipped', ['test']),
    ];
    expect([...keptInstances(jobs)].sort()).toEqual(['build', 'lint', 'test (1)']);
  });

  it('keeps nothing below a failed root', () => {
    expect(keptInstances([j('a', 'failed'), j('b', 'succeeded', ['a']), j('c', 'succeeded', ['b'])]).size).toBe(0);
  });
});
