/** Requests a browser may send, with the cookie, from any other site without changing anything. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Whether a cookie-authenticated request must prove it comes from Furrow's own pages: every
 * state-changing method, and every WebSocket upgrade (a GET that browsers send cross-site).
 */
export function needsOriginCheck(method: string, upgrade: boolean): boolean {
  return upgrade || !SAFE_METHODS.has(method.toUpperCase());
}

/** The origin (`scheme://host[:port]`, normalised) of a URL, or undefined when it has none. */
export function originOf(url: string): string | undefined {
  if (!URL.canParse(url)) return undefined;
  const { protocol, origin } = new URL(url);
  return protocol === 'http:' || protocol === 'https:' ? origin : undefined;
}

/**
 * Whether a request came from `expected` (an origin such as `https://ci.example.com`): by its
 * `Origin` header or, when a browser sent none, its `Referer`. Without either (or with
 * `Origin: null`) nothing shows where it came from, so it is refused.
 */
export function sameOrigin(headers: { origin?: string | undefined; referer?: string | undefined }, expected: string): boolean {
  const from = headers.origin !== undefined ? headers.origin : headers.referer;
  const origin = from === undefined ? undefined : originOf(from);
  return origin !== undefined && origin === originOf(expected);
}
