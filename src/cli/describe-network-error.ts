/** TLS failures worth naming by what they mean to a person. */
const TLS_REASONS: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its certificate is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'its certificate chain holds a self-signed certificate',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate is signed by an unknown authority',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its certificate is signed by an unknown authority',
  CERT_HAS_EXPIRED: 'its certificate has expired',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate is for another host name',
  ERR_SSL_WRONG_VERSION_NUMBER: 'it does not speak TLS there (is the URL http:// rather than https://?)',
};

/**
 * Why a request to a server failed, in words a person can act on: connection refused, DNS,
 * TLS, time-out, or the error's own message. Reads the cause that fetch wraps its errors in.
 */
export function describeNetworkError(err: unknown): string {
  let cause = err as (Error & { code?: string; hostname?: string; cause?: unknown; errors?: unknown[] }) | undefined;
  while (cause?.cause || cause?.errors?.length) cause = (cause.cause ?? cause.errors![0]) as typeof cause;
  const code = cause?.code ?? '';
  if (code === 'ECONNREFUSED') return 'connection refused (is the server running, and is the port right?)';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME') return `DNS: cannot resolve the host name${cause?.hostname ? ` ${cause.hostname}` : ''}`;
  if (code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return 'the connection timed out';
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return 'the connection was closed before an answer';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'the host cannot be reached from here';
  if (TLS_REASONS[code]) return `TLS: ${TLS_REASONS[code]} (${code})`;
  if (/CERT|SSL|TLS/.test(code)) return `TLS: ${cause?.message.split('\n')[0]} (${code})`;
  return cause?.message ?? String(err);
}
