import { LineCounter, parseDocument } from 'yaml';
import { checkInstances, type JobInstances } from './check-instances.js';
import { checkNeeds } from './check-needs.js';
import { instantiateJob } from './instantiate-job.js';
import { JobContext } from './job-context.js';
import { parseConcurrency } from './parse-concurrency.js';
import { parseJob } from './parse-job.js';
import { parseTriggers } from './parse-triggers.js';
import type { CompiledWorkflow, WorkflowProblem } from './workflow-model.js';
import { YamlReader } from './yaml-reader.js';

const WORKFLOW_KEYS = ['name', 'on', 'env', 'concurrency', 'jobs'];

/**
 * Parses and compiles a workflow file. Problems are collected rather than thrown, as many as can
 * be found, ordered by position; `workflow` is undefined when there is any.
 * `file` only labels the problems.
 */
export function compileWorkflow(text: string, file: string): { workflow: CompiledWorkflow | undefined; problems: WorkflowProblem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const reader = new YamlReader(file, text, lines, doc);
  // After a syntax error the tree is a guess: checking it would mostly report noise.
  for (const error of doc.errors) reader.reportAt(error.pos[0], `YAML: ${error.message}`);
  const workflow = doc.errors.length === 0 ? compileDocument(reader) : undefined;
  const problems = sorted(reader.problems);
  return { workflow: problems.length === 0 ? workflow : undefined, problems };
}

function compileDocument(reader: YamlReader): CompiledWorkflow | undefined {
  const root = reader.root();
  if (reader.isMissing(root)) {
    reader.report(root, 'the file is empty; a workflow needs at least jobs: with one job and its steps');
    return undefined;
  }
  const fields = reader.map(root, WORKFLOW_KEYS, 'a map with jobs (and optionally name, on, env, concurrency)');
  if (!fields) return undefined;
  const noMatrix = new JobContext(reader, null);
  const name = fields.get('name');
  const env = fields.get('env');
  const workflow: CompiledWorkflow = {
    name: (name && reader.string(name)) ?? null,
    on: parseTriggers(fields.get('on'), reader),
    env: env ? noMatrix.env(env) : {},
    concurrency: parseConcurrency(fields.get('concurrency'), noMatrix),
    jobs: [],
  };
  const jobsField = fields.get('jobs');
  if (!jobsField) {
    reader.report(root, 'the workflow needs jobs: a map of job ids to jobs');
    return undefined;
  }
  const entries = reader.entries(jobsField, 'a map of job ids to jobs') ?? [];
  if (reader.isMap(jobsField) && entries.length === 0) reader.report(jobsField, 'jobs must have at least one job');
  const templates = entries.flatMap((entry) => parseJob(entry, reader) ?? []);
  const closure = checkNeeds(templates, reader);
  const instances: JobInstances[] = templates.map((template) => ({ template, jobs: instantiateJob(template, workflow) }));
  checkInstances(instances, closure, reader);
  workflow.jobs = instances.flatMap((i) => i.jobs);
  return workflow;
}

/** In file order, each problem once (matrix instances can find the same one several times). */
function sorted(problems: WorkflowProblem[]): WorkflowProblem[] {
  const seen = new Set<string>();
  return problems
    .filter((p) => {
      const key = `${p.line}:${p.column}:${p.message}`;
      return !seen.has(key) && seen.add(key);
    })
    .sort((a, b) => a.line - b.line || a.column - b.column);
}
