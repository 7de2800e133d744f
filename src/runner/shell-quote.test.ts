import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { shellQuote } from './shell-quote.js';

const run = promisify(execFile);

const NASTY = [
  '',
  'plain',
  "it's",
  "''",
  "'",
  '"double" and \\backslash\\',
  '$(touch /tmp/furrow-quote-pwned) `id` ${HOME} $HOME',
  'a;b&&c||d|e>f<g',
  '* ? [a-z] ~ ~root #comment',
  'line one\nline two\n',
  '\ttab\r\n',
  '-n',
  '--',
  '!event !! ^a^b',
  'ünïcödé ✓',
  "'; rm -rf / #",
];

describe('shellQuote', () => {
  it('wraps every value in single quotes, writing a quote as the four characters \'\\\'\'', () => {
    expect(shellQuote('a b')).toBe("'a b'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote('')).toBe("''");
    for (const v of NASTY) expect(shellQuote(v)).toMatch(/^'.*'$/s);
  });

  it.each(['sh', 'bash'])('gives %s back each value byte for byte as one word', async (shell) => {
    for (const v of NASTY) {
      // Two quoted words, to prove neither leaks into the other.
      const { stdout } = await run(shell, ['-c', `printf '%s|' ${shellQuote(v)} ${shellQuote(v)}`]);
      expect(stdout).toBe(`${v}|${v}|`);
    }
  });

  it('refuses a NUL character, which no shell word can hold', () => {
    expect(() => shellQuote('a\0b')).toThrow(/NUL/);
  });
});
