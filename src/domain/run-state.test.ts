import { describe, expect, it } from 'vitest';
import { canTransition, isTerminal, sourcesOf } from './run-state.js';
import { runStatusOf } from './run-status.js';

describe('run state machine', () => {
  it('never leaves a terminal state', () => {
    for (const from of ['succeeded', 'failed', 'canceled', 'timed_out', 'runner_lost', 'skipped'] as const) {
      expect(isTerminal(from)).toBe(true);
      for (const to of ['waiting', 'queued', 'running', 'succeeded', 'failed', 'canceled', 'timed_out', 'runner_lost', 'skipped'] as const) {
        expect(canTransition(from, to)).toBe(false);
      }
    }
  });

  it('lists the sources of a state', () => {
    expect(sourcesOf('running')).toEqual(['queued']);
    expect(sourcesOf('canceled').sort()).toEqual(['queued', 'running', 'waiting']);
    expect(sourcesOf('skipped')).toEqual(['waiting', 'queued']);
    expect(sourcesOf('queued')).toEqual(['waiting']);
    expect(sourcesOf('timed_out').sort()).toEqual(['queued', 'running']);
    expect(sourcesOf('runner_lost')).toEqual(['running']);
  });

  it('derives a run status from its jobs', () => {
    expect(runStatusOf(['queued'])).toBe('queued');
    expect(runStatusOf(['succeeded', 'queued'])).toBe('running');
    expect(runStatusOf(['succeeded', 'failed'])).toBe('failed');
    expect(runStatusOf(['canceled', 'timed_out'])).toBe('timed_out');
    expect(runStatusOf(['succeeded', 'succeeded'])).toBe('succeeded');
    expect(runStatusOf(['succeeded', 'runner_lost'])).toBe('failed');
    expect(runStatusOf(['runner_lost', 'timed_out'])).toBe('timed_out');
    expect(runStatusOf(['waiting', 'queued'])).toBe('queued');
    expect(runStatusOf(['succeeded', 'waiting'])).toBe('running');
    expect(runStatusOf(['succeeded', 'skipped'])).toBe('succeeded');
    expect(runStatusOf(['failed', 'skipped'])).toBe('failed');
    expect(runStatusOf(['skipped', 'skipped'])).toBe('skipped');
  });
});
