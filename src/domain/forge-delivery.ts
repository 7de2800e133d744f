export type ForgeName = 'github' | 'gitlab' | 'gitea';

/** A request recognised as a forge's webhook delivery, by its headers. */
export interface ForgeRequest {
  forge: ForgeName;
  /** The event as the forge names it (`push`, `Push Hook`, `pull_request`…). */
  event: string;
  /** The forge's id of the delivery, the same when it delivers it again; null when it sends none. */
  deliveryId: string | null;
  /** What proves the sender knows the secret: an HMAC-SHA256 of the body in hex, or the secret itself (GitLab). */
  proof: { kind: 'hmac'; hex: string } | { kind: 'token'; value: string } | null;
}

type Headers = Record<string, string | string[] | undefined>;

const header = (h: Headers, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

/**
 * Which forge sent a request, from its headers (lower-case, as Node gives them). Gitea and
 * Forgejo also send GitHub's headers, so they are recognised first.
 */
export function recognizeForge(h: Headers): ForgeRequest | undefined {
  const giteaEvent = header(h, 'x-forgejo-event') ?? header(h, 'x-gitea-event');
  if (giteaEvent) {
    const hex = header(h, 'x-forgejo-signature') ?? header(h, 'x-gitea-signature');
    return { forge: 'gitea', event: giteaEvent, deliveryId: header(h, 'x-forgejo-delivery') ?? header(h, 'x-gitea-delivery') ?? null, proof: hex ? { kind: 'hmac', hex } : null };
  }
  const githubEvent = header(h, 'x-github-event');
  if (githubEvent) {
    const signature = header(h, 'x-hub-signature-256');
    const hex = signature?.startsWith('sha256=') ? signature.slice(7) : undefined;
    return { forge: 'github', event: githubEvent, deliveryId: header(h, 'x-github-delivery') ?? null, proof: hex !== undefined ? { kind: 'hmac', hex } : null };
  }
  const gitlabEvent = header(h, 'x-gitlab-event');
  if (gitlabEvent) {
    const token = header(h, 'x-gitlab-token');
    // Idempotency-Key stays the same when GitLab retries a delivery; the event UUID is older.
    const id = header(h, 'idempotency-key') ?? header(h, 'x-gitlab-event-uuid') ?? null;
    return { forge: 'gitlab', event: gitlabEvent, deliveryId: id, proof: token !== undefined ? { kind: 'token', value: token } : null };
  }
  return undefined;
}

/**
 * A delivery's body as JSON: sent as JSON, or (as GitHub may) as a form whose `payload` field
 * holds it. Undefined when it is neither.
 */
export function parseDeliveryBody(body: Buffer, contentType: string | undefined): unknown {
  try {
    const text = body.toString('utf8');
    if (contentType?.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
      const payload = new URLSearchParams(text).get('payload');
      return payload === null ? undefined : JSON.parse(payload);
    }
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
