import { readFileSync } from 'node:fs';
import path from 'node:path';
import { SETTINGS, type SettingName, type SettingSpec } from './config-schema.js';

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
  shutdownGraceSeconds: number;
  maxBodyBytes: number;
  loginRateLimit: number;
  sessionTtlHours: number;
  cookieSecure: boolean;
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
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
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
  if (problems.length > 0) throw new ConfigError(problems);
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
    workDir: path.resolve((values.FURROW_WORK_DIR as string | undefined) ?? path.join(dataDir, 'work')),
    jobLeaseSeconds: values.FURROW_JOB_LEASE_SECONDS as number,
    defaultTimeoutSeconds: values.FURROW_DEFAULT_TIMEOUT_SECONDS as number,
    shutdownGraceSeconds: values.FURROW_SHUTDOWN_GRACE_SECONDS as number,
    maxBodyBytes: values.FURROW_MAX_BODY_BYTES as number,
    loginRateLimit: values.FURROW_LOGIN_RATE_LIMIT as number,
    sessionTtlHours: values.FURROW_SESSION_TTL_HOURS as number,
    cookieSecure: values.FURROW_COOKIE_SECURE as boolean,
  };
}
