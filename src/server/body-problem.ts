/** How deep a request body's arrays and objects may nest: no route takes more than a few levels. */
export const MAX_BODY_DEPTH = 32;

/**
 * What no route can take in a parsed JSON body, found without recursion (a body nested ten
 * thousand deep must not exhaust the stack): nesting deeper than MAX_BODY_DEPTH, or a string (or
 * key) holding a NUL character, which PostgreSQL cannot store in text. The field is a dotted path.
 */
export function bodyProblem(body: unknown): { field: string; message: string } | undefined {
  const pending: { value: unknown; at: string; depth: number }[] = [{ value: body, at: '', depth: 0 }];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const { value, at, depth } = next;
    if (typeof value === 'string') {
      if (value.includes('\u0000')) return { field: at || '(body)', message: 'contains a NUL character (\\u0000), which text may not hold' };
      continue;
    }
    if (!value || typeof value !== 'object') continue;
    if (depth >= MAX_BODY_DEPTH) return { field: at || '(body)', message: `nests deeper than ${MAX_BODY_DEPTH} levels` };
    // Reversed onto the stack, so that the first problem in document order is found first.
    for (const [key, child] of Object.entries(value).reverse()) {
      const field = at ? `${at}.${key}` : key;
      if (key.includes('\u0000')) return { field, message: 'contains a NUL character (\\u0000), which text may not hold' };
      pending.push({ value: child, at: field, depth: depth + 1 });
    }
  }
  return undefined;
}
