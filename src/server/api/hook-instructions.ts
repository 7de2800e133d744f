/** How to set a repository's webhook up on each forge, with its URL filled in (the secret is shown beside it). */
export function hookInstructions(url: string) {
  return {
    github: {
      where: 'Repository → Settings → Webhooks → Add webhook',
      settings: { 'Payload URL': url, 'Content type': 'application/json', Secret: 'the secret above', events: 'Just the push event, or pushes and pull requests (and releases) as your workflows need' },
    },
    gitlab: {
      where: 'Project → Settings → Webhooks → Add new webhook',
      settings: { URL: url, 'Secret token': 'the secret above', Trigger: 'Push events, Tag push events, Merge request events' },
    },
    gitea: {
      where: 'Repository → Settings → Webhooks → Add webhook → Gitea (Forgejo: Forgejo)',
      settings: { 'Target URL': url, 'HTTP method': 'POST', 'POST content type': 'application/json', Secret: 'the secret above', 'Trigger on': 'Push events (and Pull request events)' },
    },
  };
}
