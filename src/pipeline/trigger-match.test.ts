import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RefChange } from '../domain/forge-event.js';
import { deleteMatches, gitTriggerMatches, pullRequestMatches, pushMatches } from './trigger-match.js';
import type { PushFilter } from './workflow-model.js';

const filter = (f: Partial<PushFilter> = {}): PushFilter => ({ branches: [], branchesIgnore: [], tags: [], tagsIgnore: [], paths: [], pathsIgnore: [], ...f });
const change = (ref: string, c: Partial<RefChange> = {}): RefChange => ({ ref, type: 'changed', before: 'a'.repeat(40), after: 'b'.repeat(40), paths: [], ...c });
const name = fc.stringMatching(/^[a-z][a-z0-9/._-]{0,20}$/);

describe('pushMatches', () => {
  it('without filters, every branch and tag that is added or changed, never a removal', () => {
    fc.assert(
      fc.property(name, fc.constantFrom('refs/heads/', 'refs/tags/'), fc.constantFrom('added', 'changed', 'removed') as fc.Arbitrary<RefChange['type']>, (n, prefix, type) => {
        expect(pushMatches(filter(), change(prefix + n, { type }))).toBe(type !== 'removed');
      }),
    );
  });

  it('with only branch filters no tag, with only tag filters no branch', () => {
    fc.assert(
      fc.property(name, (n) => {
        expect(pushMatches(filter({ branches: ['**'] }), change(`refs/tags/${n}`))).toBe(false);
        expect(pushMatches(filter({ tags: ['**'] }), change(`refs/heads/${n}`))).toBe(false);
        expect(pushMatches(filter({ branches: ['**'], tags: ['**'] }), change(`refs/tags/${n}`))).toBe(true);
      }),
    );
  });

  it('paths: one changed path must match paths, or not be ignored; tags are not filtered by paths', () => {
    const docs = filter({ paths: ['docs/**'] });
    expect(pushMatches(docs, change('refs/heads/main', { paths: ['src/a.ts', 'docs/x.md'] }))).toBe(true);
    expect(pushMatches(docs, change('refs/heads/main', { paths: ['src/a.ts'] }))).toBe(false);
    expect(pushMatches(docs, change('refs/heads/main', { paths: null }))).toBe('paths-unknown');
    expect(pushMatches(docs, change('refs/tags/v1', { paths: [] }))).toBe(true);
    const notDocs = filter({ pathsIgnore: ['docs/**'] });
    fc.assert(
      fc.property(fc.array(fc.constantFrom('docs/a.md', 'docs/b/c.md', 'src/x.ts', 'README.md'), { minLength: 1 }), (paths) => {
        expect(pushMatches(notDocs, change('refs/heads/main', { paths }))).toBe(paths.some((p) => !p.startsWith('docs/')));
      }),
    );
  });

  it('branches with ignores: matched and not ignored', () => {
    const f = filter({ branches: ['release/**'], branchesIgnore: ['release/**-alpha'] });
    expect(pushMatches(f, change('refs/heads/release/1.0'))).toBe(true);
    expect(pushMatches(f, change('refs/heads/release/1.0-alpha'))).toBe(false);
    expect(pushMatches(f, change('refs/heads/main'))).toBe(false);
  });
});

describe('deleteMatches, pullRequestMatches, gitTriggerMatches', () => {
  it('on.delete takes only removals, by branch or tag pattern', () => {
    const removed = (ref: string) => change(ref, { type: 'removed', after: null });
    expect(deleteMatches({ branches: [], tags: [] }, removed('refs/tags/v1'))).toBe(true);
    expect(deleteMatches({ branches: ['feature/*'], tags: [] }, removed('refs/heads/feature/a'))).toBe(true);
    expect(deleteMatches({ branches: ['feature/*'], tags: [] }, removed('refs/tags/v1'))).toBe(false);
    expect(deleteMatches({ branches: [], tags: [] }, change('refs/heads/x'))).toBe(false);
  });

  it('on.pull_request follows its actions into its base branches', () => {
    const pr = { action: 'opened' as const, number: 1, head: { sha: 'c'.repeat(40), ref: 'refs/pull/1/head', branch: 'topic' }, base: 'main', fork: true, title: '' };
    expect(pullRequestMatches({ branches: [], branchesIgnore: [], types: ['opened'] }, pr)).toBe(true);
    expect(pullRequestMatches({ branches: ['release/*'], branchesIgnore: [], types: ['opened'] }, pr)).toBe(false);
    expect(pullRequestMatches({ branches: [], branchesIgnore: [], types: ['closed'] }, pr)).toBe(false);
  });

  it('a git trigger matches full refs or short names, and its change types', () => {
    expect(gitTriggerMatches({ refs: [], changes: [] }, change('refs/heads/x', { type: 'removed' }))).toBe(true);
    expect(gitTriggerMatches({ refs: ['refs/tags/*'], changes: [] }, change('refs/tags/v1'))).toBe(true);
    expect(gitTriggerMatches({ refs: ['refs/tags/*'], changes: [] }, change('refs/heads/v1'))).toBe(false);
    expect(gitTriggerMatches({ refs: ['main'], changes: ['added'] }, change('refs/heads/main'))).toBe(false);
    expect(gitTriggerMatches({ refs: ['main'], changes: ['changed'] }, change('refs/heads/main'))).toBe(true);
    expect(gitTriggerMatches({ refs: ['refs/heads/*', '!main'], changes: [] }, change('refs/heads/main'))).toBe(false);
    expect(gitTriggerMatches({ refs: ['refs/heads/*', '!main'], changes: [] }, change('refs/heads/dev'))).toBe(true);
  });
});
