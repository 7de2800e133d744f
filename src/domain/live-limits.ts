/** Bounds on what live WebSocket viewers may make a server instance hold. */
export interface LiveLimits {
  maxSubscriptionsPerSocket: number;
  /** Per user on one instance. */
  maxSubscriptionsPerUser: number;
  /** Most bytes queued for one socket; past it the socket is closed. */
  sendBufferBytes: number;
}

/** Close codes of the live WebSocket (docs/api.md). */
export const LIVE_CLOSE = {
  /** The socket's token was revoked, its session ended, or its user removed. */
  credentialRevoked: 4401,
  /** The client let more than the send buffer bound queue up. */
  sendBufferFull: 4429,
} as const;

/** Why one more subscription is refused, or undefined when it fits. */
export function subscriptionRefusal(held: { socket: number; user: number }, limits: LiveLimits): string | undefined {
  if (held.socket >= limits.maxSubscriptionsPerSocket) {
    return `This socket already holds ${held.socket} subscriptions, the most it may (FURROW_LIVE_MAX_SUBSCRIPTIONS_PER_SOCKET); unsubscribe from one first.`;
  }
  if (held.user >= limits.maxSubscriptionsPerUser) {
    return `You already hold ${held.user} live subscriptions on this server, the most you may (FURROW_LIVE_MAX_SUBSCRIPTIONS_PER_USER); unsubscribe or close another socket first.`;
  }
  return undefined;
}

/**
 * How a log streams to one socket: read at most `chunkBytes` at a time, and only while less than
 * `resumeBelow` is queued. A chunk (base64 and JSON make it at most about 4/3 larger) then never
 * takes the queue past the bound, which leaves room for run snapshots and answers.
 */
export function logFlow(sendBufferBytes: number): { chunkBytes: number; resumeBelow: number } {
  return { chunkBytes: Math.max(4096, Math.min(256 * 1024, Math.floor(sendBufferBytes / 8))), resumeBelow: Math.floor(sendBufferBytes / 2) };
}
