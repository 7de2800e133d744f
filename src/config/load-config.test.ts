import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { hostname } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SETTINGS } from './config-schema.js';
import { ConfigError, loadConfig } from './load-config.js';
import { rootStateDir } from './state-dir.js';

const dir = mkdtempSync(path.join(tmpdir(), 'furrow-config-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** Writes a config file and returns its path. */
function configFile(content: unknown): string {
  const file = path.join(dir, `config-${++files}.json`);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

/** The problems loadConfig reports for `env`; fails the test when it does not throw a ConfigError. */
function problemsOf(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('loadConfig accepted the configuration');
}

/** DATA_DIR/work, except as root (see rootStateDir). */
const defaultWorkDir = (dataDir: string) => path.join(process.getuid?.() === 0 ? rootStateDir(dataDir) : dataDir, 'work');

describe('loadConfig', () => {
  it('uses the schema defaults when nothing is set', () => {
    const c = loadConfig({});
    expect(c).toEqual({
      dataDir: path.resolve(SETTINGS.FURROW_DATA_DIR.default),
      host: SETTINGS.FURROW_HOST.default,
      port: SETTINGS.FURROW_PORT.default,
      databaseUrl: undefined,
      embeddedPgPort: SETTINGS.FURROW_EMBEDDED_PG_PORT.default,
      logLevel: SETTINGS.FURROW_LOG_LEVEL.default,
      localRunner: SETTINGS.FURROW_LOCAL_RUNNER.default,
      localRunnerCapacity: SETTINGS.FURROW_LOCAL_RUNNER_CAPACITY.default,
      workDir: defaultWorkDir(path.resolve(SETTINGS.FURROW_DATA_DIR.default)),
      jobLeaseSeconds: SETTINGS.FURROW_JOB_LEASE_SECONDS.default,
      defaultTimeoutSeconds: SETTINGS.FURROW_DEFAULT_TIMEOUT_SECONDS.default,
      queueTimeoutSeconds: SETTINGS.FURROW_QUEUE_TIMEOUT_SECONDS.default,
      maxJobsPerRun: SETTINGS.FURROW_MAX_JOBS_PER_RUN.default,
      shutdownGraceSeconds: SETTINGS.FURROW_SHUTDOWN_GRACE_SECONDS.default,
      maxBodyBytes: SETTINGS.FURROW_MAX_BODY_BYTES.default,
      webhookMaxBodyBytes: SETTINGS.FURROW_WEBHOOK_MAX_BODY_BYTES.default,
      deliveryRetentionDays: SETTINGS.FURROW_DELIVERY_RETENTION_DAYS.default,
      loginRateLimit: SETTINGS.FURROW_LOGIN_RATE_LIMIT.default,
      sessionTtlHours: SETTINGS.FURROW_SESSION_TTL_HOURS.default,
      cookieSecure: SETTINGS.FURROW_COOKIE_SECURE.default,
      publicOrigin: undefined,
      live: {
        maxSubscriptionsPerSocket: SETTINGS.FURROW_LIVE_MAX_SUBSCRIPTIONS_PER_SOCKET.default,
        maxSubscriptionsPerUser: SETTINGS.FURROW_LIVE_MAX_SUBSCRIPTIONS_PER_USER.default,
        sendBufferBytes: SETTINGS.FURROW_LIVE_SEND_BUFFER_KB.default * 1024,
      },
      secretKey: undefined,
      artifactMaxBytes: SETTINGS.FURROW_ARTIFACT_MAX_MB.default * 1024 * 1024,
      artifactRunMaxBytes: SETTINGS.FURROW_ARTIFACT_RUN_MAX_MB.default * 1024 * 1024,
      gitTimeoutSeconds: SETTINGS.FURROW_GIT_TIMEOUT_SECONDS.default,
      poll: { intervalSeconds: SETTINGS.FURROW_POLL_INTERVAL_SECONDS.default, concurrency: SETTINGS.FURROW_POLL_CONCURRENCY.default },
      localRepositories: false,
      runner: {
        url: undefined,
        token: undefined,
        tokenFile: undefined,
        name: hostname(),
        labels: [],
        capacity: SETTINGS.FURROW_RUNNER_CAPACITY.default,
        transport: SETTINGS.FURROW_RUNNER_TRANSPORT.default,
        workDir: path.resolve(SETTINGS.FURROW_RUNNER_WORK_DIR.default),
      },
      executor: {
        kind: SETTINGS.FURROW_RUNNER_EXECUTOR.default,
        jobUser: SETTINGS.FURROW_JOB_USER.default,
        limits: { memoryMb: 0, pidsMax: 0, cpuPercent: 0 },
        podmanRuntime: undefined,
        ssh: { target: undefined, port: 22, keyFile: undefined, knownHosts: undefined, workDir: SETTINGS.FURROW_SSH_WORK_DIR.default },
      },
    });
  });

  it('parses runner labels, refusing malformed ones; flags override variables', () => {
    expect(loadConfig({ FURROW_RUNNER_LABELS: ' gpu, arm64 ,,gpu' }).runner.labels).toEqual(['gpu', 'arm64']);
    expect(() => loadConfig({ FURROW_RUNNER_LABELS: 'gpu,has space' })).toThrow(/"has space" is not a label/);
    expect(loadConfig({ FURROW_RUNNER_CAPACITY: '2' }, { FURROW_RUNNER_CAPACITY: '5' }).runner.capacity).toBe(5);
    expect(() => loadConfig({}, { FURROW_RUNNER_EXECUTOR: 'docker' })).toThrow(/FURROW_RUNNER_EXECUTOR must be one of shell, bwrap, podman, ssh/);
  });

  it('ignores variables that are not Furrow settings', () => {
    expect(loadConfig({ PATH: '/bin', HOME: '/root', FURROWISH: 'x' }).port).toBe(8080);
  });

  it('resolves directories to absolute paths; the work dir defaults to DATA_DIR/work, or as root to one outside it', () => {
    expect(loadConfig({ FURROW_DATA_DIR: '/srv/furrow' }).workDir).toBe(defaultWorkDir('/srv/furrow'));
    if (process.getuid?.() === 0) expect(defaultWorkDir('/srv/furrow')).toMatch(/^\/var\/lib\/furrow\/[0-9a-f]{16}\/work$/);
    expect(rootStateDir('/srv/furrow')).not.toBe(rootStateDir('/srv/furrow2'));
    const c = loadConfig({ FURROW_DATA_DIR: 'rel/data', FURROW_WORK_DIR: 'rel/work' });
    expect(c.dataDir).toBe(path.resolve('rel/data'));
    expect(c.workDir).toBe(path.resolve('rel/work'));
  });

  it('passes DATABASE_URL through', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u:p@db:5432/furrow' }).databaseUrl).toBe('postgres://u:p@db:5432/furrow');
  });

  it('keeps only the origin of FURROW_PUBLIC_URL and refuses what is not an http(s) URL', () => {
    expect(loadConfig({ FURROW_PUBLIC_URL: 'https://CI.example.com:8443/furrow/' }).publicOrigin).toBe('https://ci.example.com:8443');
    expect(() => loadConfig({ FURROW_PUBLIC_URL: 'ci.example.com' })).toThrow('FURROW_PUBLIC_URL must be an http:// or https:// URL, got "ci.example.com"');
    expect(() => loadConfig({ FURROW_PUBLIC_URL: 'ftp://ci.example.com' })).toThrow('FURROW_PUBLIC_URL must be');
  });

  it('parses integers, booleans and enums', () => {
    const c = loadConfig({
      FURROW_PORT: '9000',
      FURROW_EMBEDDED_PG_PORT: ' 5433 ',
      FURROW_LOCAL_RUNNER_CAPACITY: '256',
      FURROW_SHUTDOWN_GRACE_SECONDS: '0',
      FURROW_LOCAL_RUNNER: 'off',
      FURROW_COOKIE_SECURE: 'YES',
      FURROW_LOG_LEVEL: 'debug',
    });
    expect(c).toMatchObject({ port: 9000, embeddedPgPort: 5433, localRunnerCapacity: 256, shutdownGraceSeconds: 0, localRunner: false, cookieSecure: true, logLevel: 'debug' });
  });

  it.each([
    ['1', true],
    ['true', true],
    ['True', true],
    ['yes', true],
    ['on', true],
    ['0', false],
    ['false', false],
    ['no', false],
    ['OFF', false],
  ])('reads the boolean %j as %s', (raw, value) => {
    expect(loadConfig({ FURROW_COOKIE_SECURE: raw }).cookieSecure).toBe(value);
  });

  it('accepts the bounds of a range and refuses values just outside', () => {
    expect(loadConfig({ FURROW_PORT: '0' }).port).toBe(0);
    expect(loadConfig({ FURROW_PORT: '65535' }).port).toBe(65535);
    expect(problemsOf({ FURROW_PORT: '65536' })).toEqual(['FURROW_PORT must be between 0 and 65535, got 65536']);
    expect(problemsOf({ FURROW_PORT: '-1' })).toEqual(['FURROW_PORT must be between 0 and 65535, got -1']);
  });

  it.each(['', '8080.5', '1e3', '0x50', 'eighty', '80 80'])('refuses the integer %j', (raw) => {
    expect(problemsOf({ FURROW_PORT: raw })).toEqual([`FURROW_PORT must be a whole number, got "${raw}"`]);
  });

  it('refuses booleans, enum values and empty strings it does not know', () => {
    expect(problemsOf({ FURROW_LOCAL_RUNNER: 'maybe' })).toEqual(['FURROW_LOCAL_RUNNER must be true or false, got "maybe"']);
    expect(problemsOf({ FURROW_LOG_LEVEL: 'INFO' })).toEqual([
      'FURROW_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "INFO"',
    ]);
    expect(problemsOf({ FURROW_HOST: '' })).toEqual(['FURROW_HOST must not be empty']);
    expect(problemsOf({ DATABASE_URL: '' })).toEqual(['DATABASE_URL must not be empty']);
  });

  it('reports every problem at once in one ConfigError', () => {
    let error: unknown;
    try {
      loadConfig({
        FURROW_PORT: 'http',
        FURROW_LOCAL_RUNNER_CAPACITY: '0',
        FURROW_COOKIE_SECURE: 'sometimes',
        FURROW_LOG_LEVEL: 'verbose',
        FURROW_PROT: '80',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const { problems, message, name } = error as ConfigError;
    expect(name).toBe('ConfigError');
    expect(problems).toHaveLength(5);
    expect(problems).toEqual(
      expect.arrayContaining([
        'unknown setting FURROW_PROT (see docs/configuration.md)',
        'FURROW_PORT must be a whole number, got "http"',
        'FURROW_LOCAL_RUNNER_CAPACITY must be between 1 and 256, got 0',
        'FURROW_COOKIE_SECURE must be true or false, got "sometimes"',
        'FURROW_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"',
      ]),
    );
    // The message lists each problem on its own line.
    expect(message.split('\n')).toEqual(['Invalid configuration:', ...problems.map((p) => `  - ${p}`)]);
  });

  it('refuses an unknown FURROW_ variable, even when everything else is fine', () => {
    expect(problemsOf({ FURROW_PORT: '8080', FURROW_LOGLEVEL: 'debug' })).toEqual(['unknown setting FURROW_LOGLEVEL (see docs/configuration.md)']);
  });

  describe('FURROW_CONFIG file', () => {
    it('reads settings from the JSON file, numbers and booleans included', () => {
      const file = configFile({ FURROW_PORT: 9100, FURROW_LOCAL_RUNNER: false, FURROW_HOST: '0.0.0.0', DATABASE_URL: 'postgres://db/furrow' });
      expect(loadConfig({ FURROW_CONFIG: file })).toMatchObject({ port: 9100, localRunner: false, host: '0.0.0.0', databaseUrl: 'postgres://db/furrow' });
    });

    it('lets environment variables win over the file', () => {
      const file = configFile({ FURROW_PORT: 9100, FURROW_LOG_LEVEL: 'warn' });
      const c = loadConfig({ FURROW_CONFIG: file, FURROW_PORT: '9200' });
      expect(c.port).toBe(9200);
      expect(c.logLevel).toBe('warn');
    });

    it('does not validate a file value that a variable overrides', () => {
      const file = configFile({ FURROW_PORT: 'not a port' });
      expect(loadConfig({ FURROW_CONFIG: file, FURROW_PORT: '9200' }).port).toBe(9200);
    });

    it('refuses an unknown key in the file', () => {
      const file = configFile({ FURROW_PORT: 9100, FURROW_PROT: 9100, port: 1 });
      expect(problemsOf({ FURROW_CONFIG: file })).toEqual([`${file}: unknown setting "FURROW_PROT"`, `${file}: unknown setting "port"`]);
    });

    it('validates file values like variables, together with the other problems', () => {
      const file = configFile({ FURROW_LOCAL_RUNNER_CAPACITY: 1000, FURROW_COOKIE_SECURE: 'sometimes' });
      expect(problemsOf({ FURROW_CONFIG: file, FURROW_TYPO: '1' })).toEqual([
        'unknown setting FURROW_TYPO (see docs/configuration.md)',
        'FURROW_LOCAL_RUNNER_CAPACITY must be between 1 and 256, got 1000',
        'FURROW_COOKIE_SECURE must be true or false, got "sometimes"',
      ]);
    });

    it('reports a missing file, bad JSON and a file that is not an object', () => {
      const missing = path.join(dir, 'missing.json');
      expect(problemsOf({ FURROW_CONFIG: missing })).toEqual([expect.stringMatching(new RegExp(`^FURROW_CONFIG: cannot read ${missing}: .*ENOENT`))]);
      const broken = configFile('{ "FURROW_PORT": ');
      expect(problemsOf({ FURROW_CONFIG: broken })).toEqual([expect.stringMatching(new RegExp(`^FURROW_CONFIG: cannot read ${broken}: `))]);
      const list = configFile([['FURROW_PORT', 1]]);
      expect(problemsOf({ FURROW_CONFIG: list })).toEqual([`FURROW_CONFIG: ${list} must hold a JSON object`]);
    });
  });
});
