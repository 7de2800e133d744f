/**
 * Quotes `value` as one word for a POSIX shell (sh, dash, bash, busybox ash): inside single
 * quotes no character is special, so the value is wrapped in them and each `'` in it is written
 * as `'\''` (close, escaped quote, reopen). Used to build the few command lines a remote shell
 * must parse (the ssh executor); local processes get argv arrays instead.
 */
export function shellQuote(value: string): string {
  // A shell word, like any argv element or environment value, ends at the first NUL.
  if (value.includes('\0')) throw new Error('a shell word cannot hold a NUL character');
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
