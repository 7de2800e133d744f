/**
 * SQLSTATE codes that say "try again": the server is shutting down or starting up (57P01–57P03),
 * a connection failure (class 08), too many connections (53300), a serialization failure or a
 * deadlock (40001, 40P01). The statement did not take effect, or took effect in a transaction
 * that was rolled back, so running the same guarded change again is safe.
 */
const TRANSIENT_CODES = new Set(['57P01', '57P02', '57P03', '53300', '40001', '40P01']);

/** A serialization failure or a deadlock: PostgreSQL rolled the whole transaction back. */
const ROLLED_BACK_CODES = new Set(['40001', '40P01']);

/** Whether PostgreSQL aborted `err`'s transaction to resolve a conflict with another one. */
export function isRolledBackConflict(err: unknown): boolean {
  return err instanceof Error && ROLLED_BACK_CODES.has((err as { code?: unknown }).code as string);
}

/** Socket errors of a database that went away or is not back yet. */
const TRANSIENT_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/** What node-postgres says when a connection died under a query, or before one could start. */
const TRANSIENT_MESSAGE = /^(Connection terminated|Client has encountered a connection error|Connection terminated due to connection timeout|timeout exceeded when trying to connect)/;

/** Whether `err` is a database error that may go away by itself (a restart, a failover, a lock conflict). */
export function isTransientDatabaseError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (TRANSIENT_CODES.has(code) || code.startsWith('08') || TRANSIENT_SOCKET_CODES.has(code))) return true;
  // A Unix socket that is missing while its server restarts (it removes the socket as it stops).
  if (code === 'ENOENT' && (err as { syscall?: unknown }).syscall === 'connect') return true;
  if (TRANSIENT_MESSAGE.test(err.message)) return true;
  // An AggregateError (several addresses refused) or a wrapped cause.
  if (err instanceof AggregateError && err.errors.some(isTransientDatabaseError)) return true;
  return err.cause !== undefined && err.cause !== err && isTransientDatabaseError(err.cause);
}

export interface RetryOptions {
  /** First wait; each next one doubles, up to `maxDelayMs`. */
  firstDelayMs?: number;
  maxDelayMs?: number;
  /** Gives up (throws the last error) once this much time has passed since the first attempt. */
  budgetMs?: number;
  onRetry?: (err: unknown, delayMs: number) => void;
}

/**
 * Runs `fn`, again and again with exponential backoff while it fails with a transient database
 * error, for up to `budgetMs` (default 30 s: a database restart or failover). Only for work that
 * is safe to repeat (guarded transitions, whole transactions).
 */
export async function retryTransient<T>(fn: () => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const { firstDelayMs = 100, maxDelayMs = 2000, budgetMs = 30_000 } = opts;
  const deadline = Date.now() + budgetMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const delay = Math.min(maxDelayMs, firstDelayMs * 2 ** attempt);
      if (!isTransientDatabaseError(err) || Date.now() + delay > deadline) throw err;
      opts.onRetry?.(err, delay);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
