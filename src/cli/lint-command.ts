import { readFile } from 'node:fs/promises';
import { compileWorkflow } from '../pipeline/compile-workflow.js';
import { describeTriggers } from '../pipeline/describe-triggers.js';
import { parseFlags } from './parse-flags.js';
import { UsageError } from './usage-error.js';

export const lintHelp = `Usage: furrow lint FILE...

Checks workflow files (.furrow/*.yml) without a server: prints each problem as
FILE:LINE:COLUMN: message on stderr, or "FILE: ok (N jobs); starts on: TRIGGERS" on stdout,
counting matrix instances and naming each trigger of its on with its filters (each of them acts
once the file is a workflow's). Exits 1 when a file has a problem, 2 when a file cannot be read.
See docs/workflows.md.`;

export async function lintCommand(args: string[]): Promise<number> {
  const { positionals } = parseFlags(args, {});
  if (positionals.length === 0) throw new UsageError('name at least one workflow file: furrow lint .furrow/ci.yml');
  // Read every file first, so an unreadable one is a usage error before any output.
  const texts = await Promise.all(
    positionals.map((file) =>
      readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
        throw new UsageError(`cannot read ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
      }),
    ),
  );
  let failed = false;
  positionals.forEach((file, i) => {
    const { workflow, problems } = compileWorkflow(texts[i]!, file);
    for (const p of problems) process.stderr.write(`${p.file}:${p.line}:${p.column}: ${p.message}\n`);
    if (workflow) process.stdout.write(`${file}: ok (${workflow.jobs.length} job${workflow.jobs.length === 1 ? '' : 's'}); starts on: ${describeTriggers(workflow.on).join(', ') || 'nothing'}\n`);
    else failed = true;
  });
  return failed ? 1 : 0;
}
