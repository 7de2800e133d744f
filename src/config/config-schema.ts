/**
 * Every setting Furrow reads, in one table. Each entry is an environment variable (and the same
 * key in the optional JSON config file). docs/configuration.md lists exactly these keys; a test
 * keeps the two in step.
 */
export interface SettingSpec {
  kind: 'string' | 'integer' | 'boolean' | 'enum';
  default?: string | number | boolean;
  min?: number;
  max?: number;
  values?: readonly string[];
  description: string;
}

export const SETTINGS = {
  FURROW_CONFIG: {
    kind: 'string',
    description: 'Path of an optional JSON file whose keys are these same setting names; variables win over the file.',
  },
  FURROW_DATA_DIR: {
    kind: 'string',
    default: './.furrow',
    description: 'Directory for embedded PostgreSQL data and other local state.',
  },
  FURROW_HOST: { kind: 'string', default: '127.0.0.1', description: 'Address the HTTP server binds to.' },
  FURROW_PORT: { kind: 'integer', default: 8080, min: 0, max: 65535, description: 'Port the HTTP server listens on (0 picks a free one).' },
  DATABASE_URL: {
    kind: 'string',
    description: 'PostgreSQL connection URL. When set, that server is used and nothing is embedded.',
  },
  FURROW_EMBEDDED_PG_PORT: {
    kind: 'integer',
    default: 0,
    min: 0,
    max: 65535,
    description: 'Port for the embedded PostgreSQL (0 picks a free one at each start).',
  },
  FURROW_LOG_LEVEL: {
    kind: 'enum',
    default: 'info',
    values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    description: 'Minimum level of the structured (JSON) log written to stdout.',
  },
  FURROW_LOCAL_RUNNER: { kind: 'boolean', default: true, description: 'Start a local runner inside `furrow start`.' },
  FURROW_LOCAL_RUNNER_CAPACITY: {
    kind: 'integer',
    default: 2,
    min: 1,
    max: 256,
    description: 'How many jobs the local runner executes at once.',
  },
  FURROW_WORK_DIR: {
    kind: 'string',
    description: 'Where the local runner creates job workspaces (default: DATA_DIR/work; as root, /var/lib/furrow/KEY/work).',
  },
  FURROW_RUNNER_URL: {
    kind: 'string',
    description: 'Server URL `furrow runner` connects to (e.g. `https://ci.example.com`).',
  },
  FURROW_RUNNER_TOKEN: {
    kind: 'string',
    description: 'Registration token for `furrow runner`; used once, then the runner keeps its own credential in its work dir.',
  },
  FURROW_RUNNER_TOKEN_FILE: {
    kind: 'string',
    description: 'File holding the registration token for `furrow runner` (`--token-file`); wins over FURROW_RUNNER_TOKEN.',
  },
  FURROW_RUNNER_NAME: { kind: 'string', description: "Name `furrow runner` registers under (default: the host's name)." },
  FURROW_RUNNER_LABELS: {
    kind: 'string',
    description: 'Comma-separated labels of this process\'s runner (local or `furrow runner`); a job runs only on a runner that has all its labels.',
  },
  FURROW_RUNNER_CAPACITY: { kind: 'integer', default: 1, min: 1, max: 256, description: 'How many jobs `furrow runner` executes at once.' },
  FURROW_RUNNER_EXECUTOR: {
    kind: 'enum',
    default: 'shell',
    values: ['shell', 'bwrap', 'podman', 'ssh'],
    description: 'How this process\'s runner (local or `furrow runner`) isolates jobs; `furrow doctor` tells which work on the host.',
  },
  FURROW_RUNNER_TRANSPORT: {
    kind: 'enum',
    default: 'auto',
    values: ['auto', 'websocket', 'http'],
    description: 'How `furrow runner` reaches the server: `auto` tries a WebSocket and falls back to HTTP long-polling.',
  },
  FURROW_RUNNER_WORK_DIR: {
    kind: 'string',
    default: './furrow-runner',
    description: 'Where `furrow runner` keeps its credential and creates job workspaces.',
  },
  FURROW_JOB_USER: {
    kind: 'string',
    default: 'furrow-job',
    description: 'Base name of the unprivileged users jobs run as when the runner runs as root: one per job slot, NAME-0 to NAME-(capacity-1) (`furrow doctor --fix` creates them).',
  },
  FURROW_JOB_MEMORY_MB: { kind: 'integer', default: 0, min: 0, max: 1048576, description: 'Memory limit per job in MiB through cgroups (0: none).' },
  FURROW_JOB_PIDS_MAX: { kind: 'integer', default: 0, min: 0, max: 4194304, description: 'Most processes a job may have at once, through cgroups (0: no limit).' },
  FURROW_JOB_CPU_PERCENT: {
    kind: 'integer',
    default: 0,
    min: 0,
    max: 25600,
    description: 'CPU limit per job through cgroups, in percent of one core (150 = one and a half cores; 0: none).',
  },
  FURROW_PODMAN_RUNTIME: {
    kind: 'string',
    description: 'OCI runtime the podman executor passes as `--runtime` (default: `runc` where cgroups are v1, else podman\'s own).',
  },
  FURROW_SSH_TARGET: { kind: 'string', description: 'Host the ssh executor runs jobs on, as `user@host`.' },
  FURROW_SSH_PORT: { kind: 'integer', default: 22, min: 1, max: 65535, description: 'SSH port of FURROW_SSH_TARGET.' },
  FURROW_SSH_KEY_FILE: { kind: 'string', description: 'Private key the ssh executor authenticates with.' },
  FURROW_SSH_KNOWN_HOSTS: {
    kind: 'string',
    description: 'known_hosts file holding the target\'s host key; the ssh executor refuses unknown or changed host keys.',
  },
  FURROW_SSH_WORK_DIR: {
    kind: 'string',
    default: '/tmp/furrow-ssh',
    description: 'Directory on the ssh target under which each job gets its workspace.',
  },
  FURROW_JOB_LEASE_SECONDS: {
    kind: 'integer',
    default: 30,
    min: 3,
    max: 3600,
    description: 'Lease a runner holds on a job; it is extended every third of it while the job runs.',
  },
  FURROW_DEFAULT_TIMEOUT_SECONDS: {
    kind: 'integer',
    default: 3600,
    min: 1,
    max: 604800,
    description: 'Timeout of a workflow that does not set its own.',
  },
  FURROW_QUEUE_TIMEOUT_SECONDS: {
    kind: 'integer',
    default: 86400,
    min: 60,
    max: 2592000,
    description: 'How long a queued job may wait for a runner before it ends timed_out.',
  },
  FURROW_MAX_JOBS_PER_RUN: {
    kind: 'integer',
    default: 500,
    min: 1,
    max: 10000,
    description: 'Jobs one run may have, matrix instances included.',
  },
  FURROW_SHUTDOWN_GRACE_SECONDS: {
    kind: 'integer',
    default: 30,
    min: 0,
    max: 86400,
    description: 'On SIGINT/SIGTERM, how long running jobs may go on before they are canceled.',
  },
  FURROW_MAX_BODY_BYTES: {
    kind: 'integer',
    default: 1048576,
    min: 1024,
    max: 104857600,
    description: 'Largest accepted request body; larger ones get 413 body_too_large.',
  },
  FURROW_WEBHOOK_MAX_BODY_BYTES: {
    kind: 'integer',
    default: 5242880,
    min: 1024,
    max: 104857600,
    description: 'Largest webhook delivery accepted (and stored as it came); larger ones get 413 body_too_large.',
  },
  FURROW_DELIVERY_RETENTION_DAYS: {
    kind: 'integer',
    default: 30,
    min: 1,
    max: 3650,
    description: 'How long webhook deliveries are kept (with their bodies) after they came; older ones that are no longer queued are removed hourly, and the runs they started stay.',
  },
  FURROW_LOGIN_RATE_LIMIT: {
    kind: 'integer',
    default: 10,
    min: 1,
    max: 100000,
    description: 'Login attempts allowed per client address per minute.',
  },
  FURROW_SESSION_TTL_HOURS: {
    kind: 'integer',
    default: 336,
    min: 1,
    max: 87600,
    description: 'How long a login session stays valid.',
  },
  FURROW_SECRET_KEY: {
    kind: 'string',
    description: 'Key that seals secrets and deploy keys (32 bytes as base64 or 64 hex digits). Without it, DATA_DIR/secret.key is used, created with mode 0600 on first start. Keep it out of the database\'s backups.',
  },
  FURROW_ARTIFACT_MAX_MB: {
    kind: 'integer',
    default: 512,
    min: 1,
    max: 1048576,
    description: 'Largest artifact a job may upload, in MiB, unpacked (and as sent, compressed).',
  },
  FURROW_ARTIFACT_RUN_MAX_MB: {
    kind: 'integer',
    default: 2048,
    min: 1,
    max: 1048576,
    description: 'Most artifact storage one run may use, in MiB, counting the artifacts unpacked.',
  },
  FURROW_LOCAL_REPOSITORIES: {
    kind: 'boolean',
    default: false,
    description: 'Allow repositories on the server\'s own disk (file:// URLs and paths), which the server reads as its own user.',
  },
  FURROW_GIT_TIMEOUT_SECONDS: {
    kind: 'integer',
    default: 60,
    min: 1,
    max: 3600,
    description: 'Time limit of the server\'s own git commands (access checks, reading workflow files).',
  },
  FURROW_POLL_INTERVAL_SECONDS: {
    kind: 'integer',
    default: 60,
    min: 1,
    max: 86400,
    description: 'How often each repository that workflows read by definition or file, or that git triggers watch, is asked for its branches and tags (git ls-remote), jittered by a tenth; failures back it off up to an hour. Turn polling off per repository instead of setting 0.',
  },
  FURROW_POLL_CONCURRENCY: {
    kind: 'integer',
    default: 4,
    min: 1,
    max: 64,
    description: 'Repositories one instance polls at once (each repository is polled by one instance at a time).',
  },
  FURROW_COOKIE_SECURE: {
    kind: 'boolean',
    default: false,
    description: 'Mark the session cookie Secure (set it when Furrow is served over HTTPS).',
  },
  FURROW_PUBLIC_URL: {
    kind: 'string',
    description: 'URL people reach Furrow at (e.g. `https://ci.example.com`); requests signed in by the session cookie must come from its origin. Unset: the origin the request was addressed to.',
  },
  FURROW_LIVE_MAX_SUBSCRIPTIONS_PER_SOCKET: {
    kind: 'integer',
    default: 100,
    min: 1,
    max: 100000,
    description: 'Most subscriptions one live WebSocket may hold at once.',
  },
  FURROW_LIVE_MAX_SUBSCRIPTIONS_PER_USER: {
    kind: 'integer',
    default: 500,
    min: 1,
    max: 1000000,
    description: "Most live subscriptions one user may hold at once on one server instance, across all of the user's sockets.",
  },
  FURROW_LIVE_SEND_BUFFER_KB: {
    kind: 'integer',
    default: 4096,
    min: 64,
    max: 1048576,
    description: 'Most data, in KiB, queued for one live WebSocket whose client does not read; past it the socket is closed (code 4429).',
  },
} as const satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof SETTINGS;
