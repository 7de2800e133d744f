/**
 * The dotted path of the first string (or key) in a parsed JSON body that holds a NUL character,
 * which PostgreSQL cannot store in text; undefined when there is none.
 */
export function nulField(value: unknown, at = ''): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? at || '(body)' : undefined;
  if (!value || typeof value !== 'object') return undefined;
  for (const [key, child] of Object.entries(value)) {
    const field = at ? `${at}.${key}` : key;
    if (key.includes('\u0000')) return field;
    const found = nulField(child, field);
    if (found) return found;
  }
  return undefined;
}
