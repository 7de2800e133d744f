/**
 * Branch and tag filters as GitHub reads them: `*` matches any characters but `/`, `**` any
 * characters, `?` one character but `/`; anything else is itself. A pattern starting with `!`
 * excludes what it matches again; patterns apply in order, so a later one may include again what
 * an earlier `!` excluded.
 */
export function matchesRefPatterns(patterns: readonly string[], name: string): boolean {
  let matched = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (matched && patternRegExp(p.slice(1)).test(name)) matched = false;
    } else if (!matched && patternRegExp(p).test(name)) matched = true;
  }
  return matched;
}

function patternRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
