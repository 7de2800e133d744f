import type WebSocket from 'ws';

/** How often each side of a runner socket probes the other. */
const PING_MS = 15_000;

/**
 * Pings `socket` every 15 s and terminates it when the previous ping went unanswered, so a
 * connection that died silently (a lost network, a frozen peer) closes instead of hanging. Both
 * the runner and the server do this: neither may wait on a peer that is gone.
 */
export function keepAlive(socket: WebSocket): void {
  let alive = true;
  socket.on('pong', () => (alive = true));
  const timer = setInterval(() => {
    if (!alive) return void socket.terminate();
    alive = false;
    socket.ping();
  }, PING_MS);
  socket.once('close', () => clearInterval(timer));
}
