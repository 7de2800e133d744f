import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { recognizeForge } from './forge-delivery.js';
import { forgeEvent } from './forge-event.js';

const examples = createRequire(import.meta.url)('@octokit/webhooks-examples') as { name: string; examples: any[] }[];
const of = (name: string) => examples.find((e) => e.name === name)!.examples;

describe('forgeEvent', () => {
  it('reads every published GitHub push example as the ref change it is', () => {
    for (const p of of('push')) {
      const e = forgeEvent('github', 'push', p);
      expect(e?.kind).toBe('push');
      if (e?.kind !== 'push') continue;
      expect(e.change.ref).toBe(p.ref);
      expect(e.change.type).toBe(p.created ? 'added' : p.deleted ? 'removed' : 'changed');
      expect(e.change.after).toBe(p.deleted ? null : p.after);
      expect(e.change.paths).toEqual(p.deleted ? [] : [...new Set(p.commits.flatMap((c: any) => [...c.added, ...c.modified, ...c.removed]))]);
    }
  });

  it('reads every published pull request example: the actions runs follow, and the others as ignored', () => {
    const followed = ['opened', 'synchronize', 'reopened', 'closed', 'edited'];
    for (const p of of('pull_request')) {
      const e = forgeEvent('github', 'pull_request', p);
      if (!followed.includes(p.action)) {
        expect(e).toMatchObject({ kind: 'ignored' });
        continue;
      }
      expect(e).toMatchObject({ kind: 'pull_request', pullRequest: { action: p.action, number: p.number, head: { sha: p.pull_request.head.sha, ref: `refs/pull/${p.number}/head` }, base: p.pull_request.base.ref } });
    }
  });

  it('runs an annotated tag at the commit it tags, and takes odd path lists without failing', () => {
    const [tagObject, tagged] = ['d'.repeat(40), 'e'.repeat(40)];
    expect(forgeEvent('github', 'push', { ref: 'refs/tags/v2', before: '0'.repeat(40), after: tagObject, head_commit: { id: tagged }, commits: [] })).toMatchObject({ change: { after: tagged } });
    expect(forgeEvent('gitlab', 'Tag Push Hook', { ref: 'refs/tags/v2', before: '0'.repeat(40), after: tagObject, checkout_sha: tagged, commits: [] })).toMatchObject({ change: { after: tagged } });
    expect(forgeEvent('github', 'push', { ref: 'refs/heads/main', before: '0'.repeat(40), after: tagged, commits: [{ added: 3, modified: { a: 1 }, removed: ['x', 7] }] })).toMatchObject({ change: { paths: ['x'] } });
  });

  it('knows pings and other events, and refuses a push that lacks its ref', () => {
    expect(forgeEvent('github', 'ping', of('ping')[0])).toEqual({ kind: 'ping' });
    expect(forgeEvent('github', 'release', of('release')[0])).toEqual({ kind: 'other', name: 'release' });
    expect(forgeEvent('github', 'push', { after: 'a'.repeat(40) })).toBeUndefined();
    expect(forgeEvent('github', 'push', { ref: 'refs/heads/x', before: '0'.repeat(40), after: '0'.repeat(40) })).toBeUndefined();
  });

  it('reads GitLab pushes, tag pushes and merge requests, and Gitea deletions', () => {
    const sha = 'b'.repeat(40);
    const many = { object_kind: 'push', ref: 'refs/heads/main', before: 'a'.repeat(40), after: sha, total_commits_count: 30, commits: [{ id: sha, added: ['x'], modified: [], removed: [] }] };
    // GitLab lists at most 20 commits: with more pushed, the paths are not known.
    expect(forgeEvent('gitlab', 'Push Hook', many)).toMatchObject({ kind: 'push', change: { type: 'changed', paths: null } });
    expect(forgeEvent('gitlab', 'Tag Push Hook', { ref: 'refs/tags/v1', before: '0'.repeat(40), after: sha, commits: [] })).toMatchObject({ change: { ref: 'refs/tags/v1', type: 'added' } });
    const mr = (action: string, oldrev?: string) => ({ object_attributes: { iid: 4, action, oldrev, target_branch: 'main', source_branch: 'topic', source_project_id: 1, target_project_id: 1, last_commit: { id: sha } } });
    expect(forgeEvent('gitlab', 'Merge Request Hook', mr('open'))).toMatchObject({ pullRequest: { action: 'opened', number: 4, head: { ref: 'refs/merge-requests/4/head', sha }, fork: false } });
    expect(forgeEvent('gitlab', 'Merge Request Hook', mr('update', 'c'.repeat(40)))).toMatchObject({ pullRequest: { action: 'synchronize' } });
    expect(forgeEvent('gitlab', 'Merge Request Hook', mr('update'))).toMatchObject({ pullRequest: { action: 'edited' } });
    expect(forgeEvent('gitlab', 'Merge Request Hook', mr('approved'))).toMatchObject({ kind: 'ignored' });
    expect(forgeEvent('gitea', 'delete', { ref: 'feature/x', ref_type: 'branch' })).toEqual({ kind: 'push', change: { ref: 'refs/heads/feature/x', type: 'removed', before: null, after: null, paths: [] } });
    expect(forgeEvent('github', 'delete', { ref: 'x', ref_type: 'branch' })).toMatchObject({ kind: 'ignored' });
  });
});

describe('recognizeForge', () => {
  it('tells the forges apart by their headers, Gitea first since it sends GitHub’s too', () => {
    expect(recognizeForge({ 'x-github-event': 'push', 'x-github-delivery': 'd1', 'x-hub-signature-256': 'sha256=ab' })).toEqual({ forge: 'github', event: 'push', deliveryId: 'd1', proof: { kind: 'hmac', hex: 'ab' } });
    expect(recognizeForge({ 'x-gitea-event': 'push', 'x-github-event': 'push', 'x-gitea-signature': 'cd', 'x-gitea-delivery': 'd2' })).toMatchObject({ forge: 'gitea', proof: { hex: 'cd' }, deliveryId: 'd2' });
    expect(recognizeForge({ 'x-forgejo-event': 'push', 'x-forgejo-signature': 'ef' })).toMatchObject({ forge: 'gitea', proof: { hex: 'ef' }, deliveryId: null });
    expect(recognizeForge({ 'x-gitlab-event': 'Push Hook', 'x-gitlab-token': 's', 'x-gitlab-event-uuid': 'u', 'idempotency-key': 'k' })).toMatchObject({ forge: 'gitlab', deliveryId: 'k', proof: { kind: 'token', value: 's' } });
    expect(recognizeForge({ 'x-github-event': 'push', 'x-hub-signature': 'sha1=00' })).toMatchObject({ proof: null });
    expect(recognizeForge({ 'content-type': 'application/json' })).toBeUndefined();
  });
});
