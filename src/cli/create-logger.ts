import pino, { type Logger } from 'pino';

/** JSON logs: to stdout for long-running roles, to stderr for one-shot commands (stdout is their output). */
export function createLogger(level: string, stream: 'stdout' | 'stderr' = 'stdout'): Logger {
  return pino({ level, base: { service: 'furrow' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(stream === 'stdout' ? 1 : 2));
}
