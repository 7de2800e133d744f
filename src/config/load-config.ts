import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { SETTINGS, type SettingName, type SettingSpec } from './config-schema.js';
import { rootStateDir } from './state-dir.js';

/** The validated settings, read once at start and passed down. */
export interface Config {
  dataDir: string;
  host: string;
  port: number;
  databaseUrl: string | undefined;
  embeddedPgPort: number;
  logLevel: string;
  localRunner: boolean;
  localRunnerCapacity: number;
  workDir: string;
  jobLeaseSeconds: number;
  defaultTimeoutSeconds: number;
  queueTimeoutSeconds: number;
  maxJobsPerRun: number;
  shutdownGraceSeconds: number;
  maxBodyBytes: number;
  webhookMaxBodyBytes: number;
  deliveryRetentionDays: number;
  loginRateLimit: number;
  sessionTtlHours: number;
  cookieSecure: boolean;
  /** The origin of FURROW_PUBLIC_URL, or undefined to take each request's own. */
  publicOrigin: string | undefined;
  live: LiveSettings;
  /** FURROW_SECRET_KEY as given (decoded by the server's secret box), or undefined for the key file. */
  secretKey: string | undefined;
  artifactMaxBytes: number;
  artifactRunMaxBytes: number;
  gitTimeoutSeconds: number;
  poll: { intervalSeconds: number; concurrency: number };
  /** Repositories may be file:// URLs or paths on the server's disk. */
  localRepositories: boolean;
  /** The runner of this process: the local one inside `furrow start`, or `furrow runner`. */
  runner: RunnerSettings;
  executor: ExecutorSettings;
}

/** Bounds on what live WebSocket viewers may make the server hold. */
export interface LiveSettings {
  maxSubscriptionsPerSocket: number;
  /** Per user on this instance (subscriptions on other instances are not counted). */
  maxSubscriptionsPerUser: number;
  sendBufferBytes: number;
}

export type ExecutorKind = 'shell' | 'bwrap' | 'podman' | 'ssh';

export interface RunnerSettings {
  url: string | undefined;
  token: string | undefined;
  /** A file holding the registration token, read only when the runner registers. */
  tokenFile: string | undefined;
  name: string;
  labels: string[];
  capacity: number;
  transport: 'auto' | 'websocket' | 'http';
  workDir: string;
}

/** How jobs are isolated; read by the executors (see src/runner/executors/). */
export interface ExecutorSettings {
  kind: ExecutorKind;
  /** User jobs run as when the runner runs as root. */
  jobUser: string;
  /** cgroup limits per job; 0 means none. */
  limits: { memoryMb: number; pidsMax: number; cpuPercent: number };
  podmanRuntime: string | undefined;
  ssh: { target: string | undefined; port: number; keyFile: string | undefined; knownHosts: string | undefined; workDir: string };
}

const LABEL = /^[A-Za-z0-9._:-]{1,64}$/;

function parseLabels(raw: string | undefined, problems: string[]): string[] {
  const labels = (raw ?? '')
    .split(',')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  for (const l of labels) if (!LABEL.test(l)) problems.push(`FURROW_RUNNER_LABELS: "${l}" is not a label (letters, digits and . _ : -, at most 64)`);
  return [...new Set(labels)];
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type Raw = Partial<Record<SettingName, string>>;

function parseValue(name: string, spec: SettingSpec, raw: string, problems: string[]): unknown {
  switch (spec.kind) {
    case 'string':
      if (raw === '') problems.push(`${name} must not be empty`);
      return raw;
    case 'integer': {
      if (!/^-?\d+$/.test(raw.trim())) {
        problems.push(`${name} must be a whole number, got "${raw}"`);
        return undefined;
      }
      const n = Number(raw);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        problems.push(`${name} must be between ${spec.min} and ${spec.max}, got ${n}`);
      }
      return n;
    }
    case 'boolean': {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      problems.push(`${name} must be true or false, got "${raw}"`);
      return undefined;
    }
    case 'enum':
      if (!spec.values?.includes(raw)) problems.push(`${name} must be one of ${spec.values?.join(', ')}, got "${raw}"`);
      return raw;
  }
}

function parsePublicOrigin(raw: string | undefined, problems: string[]): string | undefined {
  if (raw === undefined) return undefined;
  const url = URL.canParse(raw) ? new URL(raw) : undefined;
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    problems.push(`FURROW_PUBLIC_URL must be an http:// or https:// URL, got "${raw}"`);
    return undefined;
  }
  return url.origin;
}

function readFile(file: string, problems: string[]): Raw {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    problems.push(`FURROW_CONFIG: cannot read ${file}: ${(err as Error).message}`);
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    problems.push(`FURROW_CONFIG: ${file} must hold a JSON object`);
    return {};
  }
  const raw: Raw = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (!Object.hasOwn(SETTINGS, key) || key === 'FURROW_CONFIG') {
      problems.push(`${file}: unknown setting "${key}"`);
      continue;
    }
    if (value === null || typeof value === 'object') {
      problems.push(`${file}: ${key} must be a string, number or boolean`);
      continue;
    }
    raw[key as SettingName] = String(value);
  }
  return raw;
}

/**
 * Reads every setting from `env` (and the file FURROW_CONFIG names), validates them all and
 * reports every problem at once. Unknown FURROW_* variables are refused so that typos surface.
 * `overrides` (command-line flags) win over both.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Record<SettingName, string>> = {}): Config {
  env = { ...env, ...overrides };
  const problems: string[] = [];
  for (const key of Object.keys(env)) {
    if (key.startsWith('FURROW_') && !Object.hasOwn(SETTINGS, key)) {
      problems.push(`unknown setting ${key} (see docs/configuration.md)`);
    }
  }
  const fromFile = env.FURROW_CONFIG ? readFile(env.FURROW_CONFIG, problems) : {};
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(SETTINGS) as [SettingName, SettingSpec][]) {
    const raw = env[name] ?? fromFile[name];
    values[name] = raw === undefined ? spec.default : parseValue(name, spec, raw, problems);
  }
  const labels = parseLabels(values.FURROW_RUNNER_LABELS as string | undefined, problems);
  const publicOrigin = parsePublicOrigin(values.FURROW_PUBLIC_URL as string | undefined, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  const optional = (name: SettingName) => values[name] as string | undefined;
  const dataDir = path.resolve(values.FURROW_DATA_DIR as string);
  return {
    dataDir,
    host: values.FURROW_HOST as string,
    port: values.FURROW_PORT as number,
    databaseUrl: values.DATABASE_URL as string | undefined,
    embeddedPgPort: values.FURROW_EMBEDDED_PG_PORT as number,
    logLevel: values.FURROW_LOG_LEVEL as string,
    localRunner: values.FURROW_LOCAL_RUNNER as boolean,
    localRunnerCapacity: values.FURROW_LOCAL_RUNNER_CAPACITY as number,
    // As root, jobs run as the job user, who must reach the work dir even when the data dir
    // sits in a home or checkout closed to others.
    workDir: path.resolve((values.FURROW_WORK_DIR as string | undefined) ?? path.join(process.getuid?.() === 0 ? rootStateDir(dataDir) : dataDir, 'work')),
    jobLeaseSeconds: values.FURROW_JOB_LEASE_SECONDS as number,
    defaultTimeoutSeconds: values.FURROW_DEFAULT_TIMEOUT_SECONDS as number,
    queueTimeoutSeconds: values.FURROW_QUEUE_TIMEOUT_SECONDS as number,
    maxJobsPerRun: values.FURROW_MAX_JOBS_PER_RUN as number,
    shutdownGraceSeconds: values.FURROW_SHUTDOWN_GRACE_SECONDS as number,
    maxBodyBytes: values.FURROW_MAX_BODY_BYTES as number,
    webhookMaxBodyBytes: values.FURROW_WEBHOOK_MAX_BODY_BYTES as number,
    deliveryRetentionDays: values.FURROW_DELIVERY_RETENTION_DAYS as number,
    loginRateLimit: values.FURROW_LOGIN_RATE_LIMIT as number,
    sessionTtlHours: values.FURROW_SESSION_TTL_HOURS as number,
    cookieSecure: values.FURROW_COOKIE_SECURE as boolean,
    publicOrigin,
    live: {
      maxSubscriptionsPerSocket: values.FURROW_LIVE_MAX_SUBSCRIPTIONS_PER_SOCKET as number,
      maxSubscriptionsPerUser: values.FURROW_LIVE_MAX_SUBSCRIPTIONS_PER_USER as number,
      sendBufferBytes: (values.FURROW_LIVE_SEND_BUFFER_KB as number) * 1024,
    },
    secretKey: optional('FURROW_SECRET_KEY'),
    artifactMaxBytes: (values.FURROW_ARTIFACT_MAX_MB as number) * 1024 * 1024,
    artifactRunMaxBytes: (values.FURROW_ARTIFACT_RUN_MAX_MB as number) * 1024 * 1024,
    gitTimeoutSeconds: values.FURROW_GIT_TIMEOUT_SECONDS as number,
    poll: { intervalSeconds: values.FURROW_POLL_INTERVAL_SECONDS as number, concurrency: values.FURROW_POLL_CONCURRENCY as number },
    localRepositories: values.FURROW_LOCAL_REPOSITORIES as boolean,
    runner: {
      url: optional('FURROW_RUNNER_URL'),
      token: optional('FURROW_RUNNER_TOKEN'),
      tokenFile: optional('FURROW_RUNNER_TOKEN_FILE'),
      name: optional('FURROW_RUNNER_NAME') ?? hostname(),
      labels,
      capacity: values.FURROW_RUNNER_CAPACITY as number,
      transport: values.FURROW_RUNNER_TRANSPORT as RunnerSettings['transport'],
      workDir: path.resolve(values.FURROW_RUNNER_WORK_DIR as string),
    },
    executor: {
      kind: values.FURROW_RUNNER_EXECUTOR as ExecutorKind,
      jobUser: values.FURROW_JOB_USER as string,
      limits: {
        memoryMb: values.FURROW_JOB_MEMORY_MB as number,
        pidsMax: values.FURROW_JOB_PIDS_MAX as number,
        cpuPercent: values.FURROW_JOB_CPU_PERCENT as number,
      },
      podmanRuntime: optional('FURROW_PODMAN_RUNTIME'),
      ssh: {
        target: optional('FURROW_SSH_TARGET'),
        port: values.FURROW_SSH_PORT as number,
        keyFile: optional('FURROW_SSH_KEY_FILE'),
        knownHosts: optional('FURROW_SSH_KNOWN_HOSTS'),
        workDir: values.FURROW_SSH_WORK_DIR as string,
      },
    },
  };
}
