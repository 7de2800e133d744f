import { PULL_REQUEST_ACTIONS, type PullRequestAction } from '../domain/forge-event.js';
import { cronProblem, isTimeZone } from '../domain/schedule-times.js';
import { didYouMean } from './did-you-mean.js';
import { CHAIN_STATUSES, type ChainStatus, type ManualInput, type PushFilter, type WorkflowTriggers } from './workflow-model.js';
import { keyOf, type Field, type YamlReader } from './yaml-reader.js';

const TRIGGERS = ['push', 'tag', 'pull_request', 'delete', 'schedule', 'webhook', 'manual', 'workflow_dispatch', 'workflow_run'];
const DEFAULT_PULL_REQUEST_TYPES: PullRequestAction[] = ['opened', 'synchronize', 'reopened'];
const PUSH_KEYS = ['branches', 'branches-ignore', 'tags', 'tags-ignore', 'paths', 'paths-ignore'] as const;

const emptyPush = (): PushFilter => ({ branches: [], branchesIgnore: [], tags: [], tagsIgnore: [], paths: [], pathsIgnore: [] });

/** The patterns under `key` of a settings map (none when it is absent). */
function patterns(fields: Map<string, Field> | undefined, key: string, reader: YamlReader): string[] {
  const f = fields?.get(key);
  return f ? (reader.strings(f, 'a pattern or a list of patterns')?.map((p) => p.value) ?? []) : [];
}

/** Reads `on:` (absent: manual only). Triggers appear as a name, a list of names, or a map of settings. */
export function parseTriggers(field: Field | undefined, reader: YamlReader): WorkflowTriggers {
  const triggers: WorkflowTriggers = { push: null, pullRequest: null, delete: null, schedule: [], webhook: null, manual: null, workflowRun: null };
  if (!field) {
    triggers.manual = { inputs: {} };
    return triggers;
  }
  const entries: { name: string; at: Field; settings: Field | null }[] = [];
  if (reader.isMap(field)) {
    for (const entry of reader.entries(field) ?? []) entries.push({ name: keyOf(entry), at: { ...entry, node: entry.key }, settings: entry });
  } else {
    for (const item of reader.oneOrList(field)) {
      const name = reader.scalar(item, `a trigger (${TRIGGERS.join(', ')}), a list of them, or a map of them with their settings`);
      if (name !== undefined) entries.push({ name, at: item, settings: null });
    }
  }
  let pushGiven = false;
  let tagGiven = false;
  for (const { name, at, settings } of entries) {
    const given = settings && !reader.isMissing(settings) ? settings : null;
    switch (name) {
      case 'push':
        pushGiven = true;
        triggers.push ??= emptyPush();
        if (given) readPush(given, triggers.push, reader);
        break;
      case 'tag':
        tagGiven = true;
        triggers.push ??= emptyPush();
        if (given) reader.report(given, 'on.tag takes no settings (it means every tag); filter tags with on.push.tags');
        break;
      case 'pull_request':
        triggers.pullRequest = readPullRequest(given, reader);
        break;
      case 'delete': {
        const fields = (given && reader.map(given, ['branches', 'tags'], 'a map like {branches: [feature/*], tags: [v*]}')) || undefined;
        triggers.delete = { branches: patterns(fields, 'branches', reader), tags: patterns(fields, 'tags', reader) };
        break;
      }
      case 'schedule':
        if (given) triggers.schedule = readSchedule(given, reader);
        else reader.report(at, 'on.schedule needs a list of times: schedule: [{cron: "0 3 * * *"}]');
        break;
      case 'webhook': {
        const events = given && reader.map(given, ['events'])?.get('events');
        triggers.webhook = { events: events ? (reader.strings(events)?.map((e) => e.value) ?? []) : [] };
        break;
      }
      case 'workflow_run':
        if (given) triggers.workflowRun = readWorkflowRun(given, reader);
        else reader.report(at, 'on.workflow_run needs the workflows to follow: workflow_run: {workflows: [build]}');
        break;
      case 'manual':
      case 'workflow_dispatch':
        if (triggers.manual) reader.report(at, 'on lists manual twice (workflow_dispatch is another name for manual)');
        triggers.manual = { inputs: given ? readInputs(given, reader) : {} };
        break;
      default:
        reader.report(at, `unknown trigger "${name}" in on${didYouMean(name, TRIGGERS)}`);
    }
  }
  // `tag` adds every tag; a `push` without ref filters matches every tag already, and a tag
  // filter there would stop it from matching branches.
  const push = triggers.push;
  if (tagGiven && push && !(pushGiven && [push.branches, push.branchesIgnore, push.tags, push.tagsIgnore].every((l) => l.length === 0))) push.tags.push('*');
  return triggers;
}

function readPush(field: Field, push: PushFilter, reader: YamlReader): void {
  const fields = reader.map(field, PUSH_KEYS);
  for (const key of PUSH_KEYS) {
    const property = key.replace(/-(\w)/, (_, c: string) => c.toUpperCase()) as keyof PushFilter;
    push[property].push(...patterns(fields, key, reader));
  }
}

function readPullRequest(field: Field | null, reader: YamlReader): WorkflowTriggers['pullRequest'] {
  const pr = { branches: [] as string[], branchesIgnore: [] as string[], types: DEFAULT_PULL_REQUEST_TYPES };
  const fields = (field && reader.map(field, ['branches', 'branches-ignore', 'types'], 'a map like {branches: [main], types: [opened, synchronize]}')) || undefined;
  pr.branches = patterns(fields, 'branches', reader);
  pr.branchesIgnore = patterns(fields, 'branches-ignore', reader);
  const typesField = fields?.get('types');
  if (typesField) {
    pr.types = [];
    for (const t of reader.strings(typesField, 'an action or a list of them') ?? []) {
      if ((PULL_REQUEST_ACTIONS as readonly string[]).includes(t.value)) pr.types.push(t.value as PullRequestAction);
      else reader.report(typesField, `${typesField.path} has "${t.value}", which is no pull request action${didYouMean(t.value, PULL_REQUEST_ACTIONS)}`);
    }
  }
  return pr;
}

function readWorkflowRun(field: Field, reader: YamlReader): WorkflowTriggers['workflowRun'] {
  const fields = reader.map(field, ['workflows', 'statuses', 'branches'], 'a map like {workflows: [build], statuses: [succeeded], branches: [main]}');
  if (!fields) return null;
  const workflowsField = fields.get('workflows');
  const workflows = workflowsField ? (reader.strings(workflowsField, 'a workflow name or a list of them')?.map((w) => w.value) ?? []) : [];
  if (workflows.length === 0) reader.report(workflowsField ?? field, `${field.path}.workflows needs the name of at least one workflow of the project`);
  const statuses: ChainStatus[] = [];
  const statusesField = fields.get('statuses');
  for (const s of statusesField ? (reader.strings(statusesField, 'a run status or a list of them') ?? []) : []) {
    if ((CHAIN_STATUSES as readonly string[]).includes(s.value)) statuses.push(s.value as ChainStatus);
    else reader.report(statusesField!, `${statusesField!.path} has "${s.value}", which is no status a run ends with${didYouMean(s.value, CHAIN_STATUSES)}`);
  }
  return workflows.length > 0 ? { workflows, statuses, branches: patterns(fields, 'branches', reader) } : null;
}

function readSchedule(field: Field, reader: YamlReader): WorkflowTriggers['schedule'] {
  const times: WorkflowTriggers['schedule'] = [];
  for (const item of reader.list(field, 'a list of times like [{cron: "0 3 * * *"}]') ?? []) {
    const fields = reader.map(item, ['cron', 'timezone'], 'a map like {cron: "0 3 * * *", timezone: Europe/Berlin}');
    if (!fields) continue;
    const cronField = fields.get('cron');
    if (!cronField) {
      reader.report(item, `${item.path} needs a cron expression: {cron: "0 3 * * *"}`);
      continue;
    }
    const cron = reader.string(cronField);
    const zoneField = fields.get('timezone');
    const timezone = zoneField ? reader.string(zoneField) : null;
    if (timezone && !isTimeZone(timezone)) {
      reader.report(zoneField!, `${zoneField!.path} "${timezone}" is not a time zone (like UTC or Europe/Berlin)`);
      continue;
    }
    const problem = cron === undefined ? undefined : cronProblem(cron, timezone ?? 'UTC');
    if (problem) reader.report(cronField, `${cronField.path} ${problem}`);
    else if (cron !== undefined && timezone !== undefined) times.push({ cron: cron.trim(), timezone });
  }
  return times;
}

function readInputs(field: Field, reader: YamlReader): Record<string, ManualInput> {
  const inputs: Record<string, ManualInput> = {};
  const inputsField = reader.map(field, ['inputs'])?.get('inputs');
  for (const entry of inputsField ? (reader.entries(inputsField) ?? []) : []) {
    const name = keyOf(entry);
    reader.identifier(entry, 'input name');
    const fields = reader.isMissing(entry) ? new Map<string, Field>() : reader.map(entry, ['description', 'required', 'default', 'options']);
    if (!fields) continue;
    const get = <T>(key: string, read: (f: Field) => T | undefined, fallback: T): T => {
      const f = fields.get(key);
      return (f && read(f)) ?? fallback;
    };
    const input: ManualInput = {
      description: get('description', (f) => reader.scalar(f), ''),
      required: get('required', (f) => reader.boolean(f), false),
      default: get<string | null>('default', (f) => reader.scalar(f), null),
      options: get<string[] | null>('options', (f) => reader.list(f)?.map((o) => reader.scalar(o) ?? ''), null),
    };
    if (input.options && input.default !== null && !input.options.includes(input.default)) {
      reader.report(fields.get('default')!, `${entry.path}.default "${input.default}" is not one of its options (${input.options.join(', ')})`);
    }
    inputs[name] = input;
  }
  return inputs;
}
