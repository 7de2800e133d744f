import { describe, expect, it } from 'vitest';
import { waitingReason } from './waiting-reason.js';

describe('waiting reason', () => {
  const base = { labels: ['gpu', 'arm64'], matching: 3, online: 3, active: 3, free: 1 };
  it('names the labels nobody has', () => {
    expect(waitingReason({ ...base, matching: 0, online: 0, active: 0, free: 0 })).toBe('no runner has labels gpu,arm64');
    expect(waitingReason({ ...base, labels: [], matching: 0, online: 0, active: 0, free: 0 })).toBe('no runner is registered for this project');
  });
  it('tells offline, paused and busy apart', () => {
    expect(waitingReason({ ...base, online: 0, active: 0, free: 0 })).toBe('no online runner has labels gpu,arm64');
    expect(waitingReason({ ...base, labels: [], online: 0, active: 0, free: 0 })).toBe('no runner is online (3 runners are registered)');
    expect(waitingReason({ ...base, active: 0, free: 0 })).toBe('all 3 matching runners are paused');
    expect(waitingReason({ ...base, free: 0 })).toBe('all 3 matching runners are busy');
    expect(waitingReason({ ...base, active: 1, free: 0 })).toBe('the only matching runner is busy');
  });
  it('says nothing when a runner is free', () => {
    expect(waitingReason(base)).toBeNull();
  });
});
