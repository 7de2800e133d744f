/** The largest parameter a body's field becomes (longer values are cut there). */
export const MAX_FIELD_CHARS = 4096;

/**
 * The run parameters a webhook trigger takes from a JSON body: each parameter's path (`a.b.0.c`:
 * keys and list positions joined by dots) read in the body. Strings pass as they are, other
 * values as JSON; a path that leads nowhere gives no parameter.
 */
export function fieldParameters(body: unknown, fields: Record<string, string>): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [name, path] of Object.entries(fields)) {
    let value: unknown = body;
    for (const key of path.split('.')) {
      if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) {
        value = undefined;
        break;
      }
      value = (value as Record<string, unknown>)[key];
    }
    if (value === undefined) continue;
    params[name] = (typeof value === 'string' ? value : JSON.stringify(value)).slice(0, MAX_FIELD_CHARS);
  }
  return params;
}
