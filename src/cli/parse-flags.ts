import { parseArgs, type ParseArgsConfig } from 'node:util';
import { didYouMean } from '../pipeline/did-you-mean.js';
import { UsageError } from './usage-error.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Every command's flag parser: node's parseArgs with positionals allowed, whose mistakes become
 * usage errors a person can act on (an unknown flag gets the closest known one).
 */
export function parseFlags<O extends Options>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    const unknown = code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /option '([^']+)'/.exec(message)?.[1] : undefined;
    if (unknown) {
      const known = Object.entries(options).flatMap(([name, o]) => [`--${name}`, ...(o.short ? [`-${o.short}`] : [])]);
      throw new UsageError(`unknown option ${unknown}${known.length > 0 ? didYouMean(unknown, known) : ' (this command takes none)'}`);
    }
    if (code?.startsWith('ERR_PARSE_ARGS')) throw new UsageError(message.split('. To specify')[0]!);
    throw err;
  }
}
