/**
 * Every error code the API answers with, its HTTP status and a default message. Routes throw
 * `new AppError('code')`; the error handler turns it into `{ code, message, details? }`.
 */
export const ERROR_CODES = {
  unauthenticated: [401, 'Sign in or send an API token.'],
  token_invalid: [401, 'This API token is not valid: it is mistyped, or it was revoked. Create a new one with "furrow token create" or POST /api/v1/tokens.'],
  session_expired: [401, 'Your session has ended or was signed out; sign in again.'],
  invalid_credentials: [401, 'Email or password is wrong.'],
  forbidden: [403, 'Your role does not allow this.'],
  not_found: [404, 'Not found.'],
  route_not_found: [404, 'No such route.'],
  validation_failed: [400, 'The request is not valid.'],
  bad_request: [400, 'The request is not valid.'],
  invalid_json: [400, 'The request body is not valid JSON.'],
  unsupported_media_type: [415, 'Send the body as application/json.'],
  body_too_large: [413, 'The request body is too large.'],
  conflict: [409, 'That conflicts with an existing object.'],
  run_finished: [409, 'The run has already finished.'],
  run_not_finished: [409, 'The run has not finished yet.'],
  approval_not_pending: [409, 'The job is not waiting for an approval.'],
  workflow_invalid: [422, 'The workflow file has problems.'],
  not_manual: [409, 'This workflow is not started by hand: its `on` has no `manual` (or `workflow_dispatch`).'],
  repository_unreachable: [502, 'git could not read the repository.'],
  artifact_exists: [409, 'The run already has an artifact with that name.'],
  artifact_too_large: [413, 'The artifact is larger than the server accepts.'],
  protocol_version_mismatch: [400, 'The runner speaks another version of the runner protocol.'],
  runner_connection_expired: [410, 'This runner connection has ended; register again.'],
  repository_key_pending: [409, 'The repository’s deploy key is still being generated; try again in a moment.'],
  repository_key_unreadable: [409, 'The repository’s deploy key cannot be opened with this instance’s secret key; run "furrow keys rekey-missing" and add the new public key to the forge.'],
  ref_not_found: [422, 'The repository has no such branch or tag.'],
  commit_not_found: [422, 'The repository has no such commit.'],
  rate_limited: [429, 'Too many attempts; try again later.'],
  internal: [500, 'Something went wrong on the server.'],
} as const satisfies Record<string, readonly [number, string]>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class AppError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly details?: unknown,
  ) {
    super(message ?? ERROR_CODES[code][1]);
    this.status = ERROR_CODES[code][0];
  }
}

export const notFound = (what: string) => new AppError('not_found', `${what} not found.`);
