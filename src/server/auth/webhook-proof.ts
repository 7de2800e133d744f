import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { ForgeRequest } from '../../domain/forge-delivery.js';

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** The HMAC-SHA256 of a body under a secret, in hex: what GitHub and Gitea sign with. */
const hmacHex = (secret: string, body: Buffer) => createHmac('sha256', secret).update(body).digest('hex');

/** Compares in time independent of where the texts differ (digests first, so lengths never show). */
function sameText(a: string, b: string): boolean {
  return timingSafeEqual(Buffer.from(sha256(a), 'hex'), Buffer.from(sha256(b), 'hex'));
}

/** Whether a request's proof shows it was sent by someone who knows `secret`. */
export function proofHolds(proof: ForgeRequest['proof'], secret: string, body: Buffer): boolean {
  if (!proof) return false;
  if (proof.kind === 'token') return sameText(proof.value, secret);
  return sameText(proof.hex.toLowerCase(), hmacHex(secret, body));
}

/** What a delivery is known by: the forge's id (a long one by its digest), or the body's digest when the forge sends none. */
export const deliveryKey = (deliveryId: string | null, body: Buffer) => (deliveryId === null ? `sha256:${sha256(body)}` : deliveryId.length <= 200 ? deliveryId : `id-sha256:${sha256(deliveryId)}`);
