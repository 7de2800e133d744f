import { describe, expect, it } from 'vitest';
import { commitStateOf, defaultApiUrl, remoteHostAndPath, statusRequest, worthRetrying } from './commit-status.js';

describe('commit statuses', () => {
  it('map run ends to states', () => {
    expect(['succeeded', 'failed', 'timed_out', 'canceled', 'skipped', 'queued'].map((s) => commitStateOf(s as never))).toEqual(['success', 'failure', 'failure', 'error', 'error', 'pending']);
  });

  it('read the forge and repository from the remote URL forms', () => {
    expect(remoteHostAndPath('git@github.com:acme/site.git')).toEqual({ host: 'github.com', path: 'acme/site' });
    expect(remoteHostAndPath('ssh://git@gitlab.example.com:2222/group/sub/site.git')).toEqual({ host: 'gitlab.example.com', path: 'group/sub/site' });
    expect(remoteHostAndPath('https://gitea.example.com/acme/site')).toEqual({ host: 'gitea.example.com', path: 'acme/site' });
    expect(remoteHostAndPath('file:///srv/git/site.git')).toBeUndefined();
    expect(remoteHostAndPath('/srv/git/site.git')).toBeUndefined();
    expect(defaultApiUrl('github', 'git@github.com:a/b.git')).toBe('https://api.github.com');
    expect(defaultApiUrl('github', 'git@ghe.example.com:a/b.git')).toBe('https://ghe.example.com/api/v3');
    expect(defaultApiUrl('gitlab', 'https://gitlab.example.com/a/b.git')).toBe('https://gitlab.example.com');
    expect(defaultApiUrl('gitea', '/srv/x.git')).toBeUndefined();
  });

  it('build each forge’s request', () => {
    const s = { sha: 'a'.repeat(40), state: 'error' as const, context: 'furrow/ci', description: 'Run #2 canceled', targetUrl: 'https://ci/runs/1' };
    const t = { apiUrl: 'https://api.example.com/', repository: 'acme/site', token: 'tok' };
    expect(statusRequest({ ...t, forge: 'github' }, s)).toMatchObject({ url: `https://api.example.com/repos/acme/site/statuses/${s.sha}`, headers: { authorization: 'Bearer tok' } });
    expect(JSON.parse(statusRequest({ ...t, forge: 'gitlab' }, s).body)).toEqual({ state: 'canceled', name: 'furrow/ci', description: 'Run #2 canceled', target_url: 'https://ci/runs/1' });
    expect(statusRequest({ ...t, forge: 'gitea' }, s).headers.authorization).toBe('token tok');
    expect([500, 503, 429, 408, null, 401, 404, 422].map(worthRetrying)).toEqual([true, true, true, true, true, false, false, false]);
  });
});
