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
  origin_mismatch: [403, 'Requests signed in by the session cookie must come from Furrow’s own origin.'],
  not_found: [404, 'Not found.'],
  route_not_found: [404, 'No such route.'],
  validation_failed: [400, 'The request is not valid.'],
  bad_request: [400, 'The request is not valid.'],
  invalid_json: [400, 'The request body is not valid JSON.'],
  unsupported_media_type: [415, 'Send the body as application/json.'],
  body_too_large: [413, 'The request body is too large.'],
  conflict: [409, 'That conflicts with an existing object.'],
  last_owner: [409, 'An organization needs at least one owner.'],
  role_changed: [409, 'Your role changed while this request waited; look at the members again before you retry.'],
  confirmation_required: [400, 'Name the object to delete in the `confirm` query parameter.'],
  confirmation_mismatch: [400, 'The `confirm` query parameter is not the name of the object to delete.'],
  run_finished: [409, 'The run has already finished.'],
  run_not_finished: [409, 'The run has not finished yet.'],
  approval_not_pending: [409, 'The job is not waiting for an approval.'],
  workflow_invalid: [422, 'The workflow file has problems.'],
  not_manual: [409, 'This workflow is not started by hand: its `on` has no `manual` (or `workflow_dispatch`).'],
  repository_unreachable: [502, 'git could not read the repository.'],
  artifact_exists: [409, 'The run already has an artifact with that name.'],
  artifact_too_large: [413, 'The artifact is larger than the server accepts.'],
  artifact_empty: [400, 'The upload is empty; send the artifact as a tar.gz archive.'],
  artifact_not_gzip: [400, 'The upload is not gzip-compressed; send the artifact as a tar.gz archive.'],
  artifact_truncated: [400, 'The artifact’s gzip stream was cut short.'],
  artifact_corrupt: [400, 'The artifact’s gzip data is damaged.'],
  artifact_not_tar: [400, 'The artifact is not a tar.gz archive.'],
  artifact_tar_unterminated: [400, 'The artifact’s tar archive ends without its end-of-archive blocks.'],
  artifact_unsafe_path: [400, 'The artifact holds a path outside its directory.'],
  artifact_special_file: [400, 'The artifact holds a device file, FIFO or sparse file.'],
  protocol_version_mismatch: [400, 'The runner speaks another version of the runner protocol.'],
  registration_token_invalid: [401, 'The registration token is not valid: it was never issued here. Create one with "furrow runner token create" or POST /runner-tokens.'],
  registration_token_used_up: [403, 'The registration token has been used as many times as it allows; create a new one.'],
  registration_token_expired: [403, 'The registration token has expired; create a new one.'],
  registration_token_revoked: [403, 'The registration token was revoked; create a new one.'],
  runner_connection_expired: [410, 'This runner connection has ended; register again.'],
  runner_removed: [401, 'This runner was removed; register it again with a new token.'],
  repository_key_pending: [409, 'The repository’s deploy key is still being generated; try again in a moment.'],
  repository_key_unreadable: [409, 'The repository’s deploy key cannot be opened with this instance’s secret key; run "furrow keys rekey-missing" and add the new public key to the forge.'],
  ref_not_found: [422, 'The repository has no such branch or tag.'],
  too_many_jobs: [422, 'The workflow makes more jobs than one run may have.'],
  parameter_not_allowed: [400, 'A parameter names a variable that parameters may not set.'],
  commit_not_found: [422, 'The repository has no such commit.'],
  webhook_not_found: [404, 'No webhook has this URL: it was mistyped, or its repository or trigger regenerated or removed it.'],
  webhook_unrecognized: [400, 'The request is no webhook delivery of GitHub, GitLab, Gitea or Forgejo (none of their event headers is set); a repository’s webhook URL takes only theirs, a webhook trigger’s takes any.'],
  webhook_signature_invalid: [401, 'The delivery’s signature does not match the webhook secret.'],
  webhook_payload_invalid: [400, 'The delivery lacks what its event holds.'],
  delivery_in_progress: [409, 'The delivery is being turned into runs right now; redeliver it once it is done.'],
  trigger_disabled: [409, 'This webhook trigger is disabled; enable it with PATCH /api/v1/triggers/:id.'],
  rate_limited: [429, 'Too many attempts; try again later.'],
  database_unavailable: [503, 'The database cannot be reached or is restarting; try again in a few seconds.'],
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
