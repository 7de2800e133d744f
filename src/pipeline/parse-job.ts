import { JobContext } from './job-context.js';
import { parseArtifacts, type ArtifactTemplates } from './parse-artifacts.js';
import { parseConcurrency } from './parse-concurrency.js';
import { parseSteps, type StepTemplate } from './parse-steps.js';
import { parseStrategy, type Strategy } from './parse-strategy.js';
import type { CompiledJob } from './workflow-model.js';
import { keyOf, type Field, type Located, type YamlReader } from './yaml-reader.js';

const JOB_KEYS = ['name', 'runs-on', 'needs', 'if', 'env', 'timeout-minutes', 'continue-on-error', 'retry', 'image', 'environment', 'concurrency', 'checkout', 'strategy', 'steps', 'artifacts'];
const RETRY_OUTCOMES: NonNullable<CompiledJob['retry']>['on'] = ['failed', 'timed_out', 'runner_lost'];

/**
 * A job of the file as read, before matrix expansion. Texts still hold `${{ matrix.* }}`; those
 * checked after expansion (labels, artifacts) and `needs` keep their place in the file.
 */
export interface JobTemplate extends Pick<CompiledJob, 'id' | 'if' | 'env' | 'timeoutSeconds' | 'continueOnError' | 'retry' | 'environment' | 'concurrency' | 'checkout'> {
  field: Field;
  image: Located<string> | null;
  name: string | null;
  needs: Located<string>[];
  runsOn: Located<string>[];
  strategy: Strategy;
  steps: StepTemplate[];
  artifacts: ArtifactTemplates;
}

/** Reads `jobs.<id>`; problems are reported and the template is as complete as it could be read. */
export function parseJob(field: Field, reader: YamlReader): JobTemplate | undefined {
  const id = keyOf(field);
  reader.identifier(field, 'job id');
  const fields = reader.map(field, JOB_KEYS, 'a map with steps');
  if (!fields) return undefined;
  const strategy = parseStrategy(fields.get('strategy'), reader);
  const ctx = new JobContext(reader, strategy.matrixKeys);
  const text = (key: string) => {
    const f = fields.get(key);
    return (f && ctx.text(f)) ?? null;
  };
  const located = (key: string) => {
    const f = fields.get(key);
    return (f && ctx.located(f)) ?? null;
  };
  const needs = fields.get('needs');
  const runsOn = fields.get('runs-on');
  const env = fields.get('env');
  const continueOnError = fields.get('continue-on-error');
  return {
    id,
    field,
    name: text('name'),
    needs: needs ? (reader.strings(needs, 'a job id or a list of job ids') ?? []) : [],
    runsOn: runsOn ? reader.oneOrList(runsOn).flatMap((label) => ctx.located(label) ?? []) : [],
    if: ctx.condition(fields.get('if')),
    env: env ? ctx.env(env) : {},
    timeoutSeconds: ctx.timeoutSeconds(fields.get('timeout-minutes')),
    continueOnError: (continueOnError && reader.boolean(continueOnError)) ?? false,
    retry: readRetry(fields.get('retry'), reader),
    image: located('image'),
    environment: readEnvironment(fields.get('environment'), ctx),
    concurrency: parseConcurrency(fields.get('concurrency'), ctx),
    checkout: readCheckout(fields.get('checkout'), reader),
    strategy,
    steps: parseSteps(fields.get('steps'), field, ctx),
    artifacts: parseArtifacts(fields.get('artifacts'), ctx),
  };
}

/** Without `retry`, null: the server's default (a vanished runner's job once, outside environments). */
function readRetry(field: Field | undefined, reader: YamlReader): CompiledJob['retry'] {
  if (!field) return null;
  if (!reader.isMap(field)) {
    const count = reader.integer(field, 0, 10, 'attempts');
    return count === undefined ? null : { count, on: [...RETRY_OUTCOMES] };
  }
  const fields = reader.map(field, ['count', 'on']);
  const count = fields?.get('count');
  const on = fields?.get('on');
  const outcomes = on ? reader.strings(on, `a list of outcomes (${RETRY_OUTCOMES.join(', ')})`) : undefined;
  for (const outcome of outcomes ?? []) {
    if (!(RETRY_OUTCOMES as string[]).includes(outcome.value)) reader.report(outcome.field, `${on!.path} has "${outcome.value}"; a retry is for ${RETRY_OUTCOMES.join(', ')}`);
  }
  return {
    count: (count && reader.integer(count, 0, 10, 'attempts')) ?? 1,
    on: outcomes ? RETRY_OUTCOMES.filter((o) => outcomes.some((v) => v.value === o)) : [...RETRY_OUTCOMES],
  };
}

function readEnvironment(field: Field | undefined, ctx: JobContext): string | null {
  if (!field) return null;
  const nameField = ctx.reader.isMap(field) ? ctx.reader.map(field, ['name'])?.get('name') : field;
  if (!nameField && ctx.reader.isMap(field)) ctx.reader.report(field, `${field.path} needs the name of a project environment`);
  return (nameField && ctx.text(nameField, 'the name of a project environment')) ?? null;
}

function readCheckout(field: Field | undefined, reader: YamlReader): CompiledJob['checkout'] {
  const fallback = { enabled: true, depth: 1 };
  if (!field) return fallback;
  if (!reader.isMap(field)) {
    const enabled = reader.boolean(field);
    return { enabled: enabled ?? true, depth: 1 };
  }
  const depth = reader.map(field, ['depth'])?.get('depth');
  return { enabled: true, depth: (depth && reader.integer(depth, 0, 1_000_000, 'commits (0 = full history)')) ?? fallback.depth };
}
