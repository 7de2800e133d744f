import { createHmac, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';

/** GitHub's published example payloads by event (the package is JSON; its typings need another package). */
const examples = createRequire(import.meta.url)('@octokit/webhooks-examples') as { name: string; examples: any[] }[];

/** A published example payload of a GitHub event (from @octokit/webhooks-examples), as a fresh copy. */
export function githubExample(event: string, pick: (payload: any) => boolean = () => true): any {
  const found = examples.find((e) => e.name === event)?.examples.find(pick);
  if (!found) throw new Error(`no example ${event} payload`);
  return structuredClone(found);
}

/** A GitHub push payload of `ref` from `before` (null: the ref is new) to `after` (null: removed), touching `paths`. */
export function githubPush(ref: string, before: string | null, after: string | null, paths: string[] = []): any {
  const p = githubExample('push', (e) => e.ref.startsWith('refs/heads/') && e.commits.length > 0);
  const zero = '0'.repeat(40);
  Object.assign(p, { ref, before: before ?? zero, after: after ?? zero, created: before === null, deleted: after === null });
  p.commits = after === null ? [] : [{ ...p.commits[0], id: after, added: paths, modified: [], removed: [] }];
  p.head_commit = after === null ? null : p.commits[0];
  return p;
}

export interface Delivery {
  headers: Record<string, string>;
  body: string;
}

/** A GitHub delivery of `payload`, signed with `secret` (X-Hub-Signature-256). */
export function githubDelivery(event: string, payload: unknown, secret: string, id = randomUUID()): Delivery {
  const body = JSON.stringify(payload);
  const signature = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
  return { body, headers: { 'content-type': 'application/json', 'x-github-event': event, 'x-github-delivery': id, 'x-hub-signature-256': signature, 'user-agent': 'GitHub-Hookshot/test' } };
}

/** A Gitea delivery (X-Gitea-Signature is the bare hex HMAC; Gitea sends GitHub's headers too). */
export function giteaDelivery(event: string, payload: unknown, secret: string, id = randomUUID()): Delivery {
  const body = JSON.stringify(payload);
  const hex = createHmac('sha256', secret).update(body).digest('hex');
  return {
    body,
    headers: { 'content-type': 'application/json', 'x-gitea-event': event, 'x-gitea-delivery': id, 'x-gitea-signature': hex, 'x-github-event': event, 'x-github-delivery': id, 'x-hub-signature-256': `sha256=${hex}` },
  };
}

/** A GitLab delivery: the secret token itself in X-Gitlab-Token. */
export function gitlabDelivery(event: string, payload: unknown, secret: string, id = randomUUID()): Delivery {
  return { body: JSON.stringify(payload), headers: { 'content-type': 'application/json', 'x-gitlab-event': event, 'x-gitlab-token': secret, 'idempotency-key': id } };
}

/** Sends a delivery to a webhook URL. */
export async function send(url: string, d: Delivery): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method: 'POST', headers: d.headers, body: d.body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
