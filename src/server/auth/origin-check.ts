import type { FastifyRequest } from 'fastify';
import { needsOriginCheck, sameOrigin } from '../../domain/same-origin.js';
import { AppError } from '../app-error.js';

/**
 * Refuses a cookie-authenticated request that changes state (or opens a WebSocket) from another
 * site: the browser sends the cookie along wherever the request starts, so only `Origin` (or
 * `Referer`) tells Furrow's own pages from a forged form or script elsewhere. Bearer tokens are
 * never sent by a browser on its own, so they need no such check.
 */
export function assertSameOrigin(req: FastifyRequest, publicOrigin: string | undefined): void {
  const upgrade = req.headers.upgrade?.toLowerCase() === 'websocket';
  if (!needsOriginCheck(req.method, upgrade)) return;
  const expected = publicOrigin ?? `${req.protocol}://${req.host}`;
  const { origin, referer } = req.headers;
  if (sameOrigin({ origin, referer }, expected)) return;
  const from = origin ?? referer;
  throw new AppError(
    'origin_mismatch',
    `${from ? `This request comes from ${from}` : 'This request names no Origin or Referer'}, but requests signed in by the session cookie must come from ${expected}. Behind a proxy, set FURROW_PUBLIC_URL; scripts should send an API token instead.`,
  );
}
