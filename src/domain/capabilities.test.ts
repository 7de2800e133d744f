import { describe, expect, it } from 'vitest';
import { allows, effectiveRole } from './capabilities.js';

describe('capabilities', () => {
  it('takes the higher of organization and project role', () => {
    expect(effectiveRole('guest', 'manager')).toBe('manager');
    expect(effectiveRole('owner', null)).toBe('owner');
    expect(effectiveRole(null, undefined)).toBeNull();
  });

  it('grants by rank', () => {
    expect(allows('guest', 'run.read')).toBe(true);
    expect(allows('guest', 'run.start')).toBe(false);
    expect(allows('member', 'run.cancel')).toBe(true);
    expect(allows('member', 'workflow.write')).toBe(false);
    expect(allows('manager', 'workflow.write')).toBe(true);
    expect(allows('manager', 'project.delete')).toBe(false);
    expect(allows('owner', 'project.delete')).toBe(true);
    expect(allows(null, 'run.read')).toBe(false);
  });
});
