import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileWorkflow } from '../src/pipeline/compile-workflow.js';

const root = path.resolve(import.meta.dirname, '..');

/** The ```yaml blocks of a document that are whole workflows (they have a top-level `jobs:`). */
function workflowBlocks(doc: string): string[] {
  const text = readFileSync(path.join(root, doc), 'utf8');
  return [...text.matchAll(/^```yaml\n([\s\S]*?)^```/gm)].map((m) => m[1]!).filter((block) => /^jobs:/m.test(block));
}

describe('the workflow examples in the docs', () => {
  it.each(['docs/workflows.md', 'README.md'])('compile without problems in %s', (doc) => {
    const blocks = workflowBlocks(doc);
    expect(blocks.length).toBeGreaterThan(0);
    for (const block of blocks) expect(compileWorkflow(block, doc).problems).toEqual([]);
  });

  it('expand the matrix example to the combinations the text names', () => {
    const text = readFileSync(path.join(root, 'docs/workflows.md'), 'utf8');
    const strategy = /^```yaml\n(strategy:[\s\S]*?)^```/m.exec(text)![1]!;
    const job = `jobs:\n  test:\n${strategy.trimEnd().replace(/^/gm, '    ')}\n    steps:\n      - run: true\n`;
    const { workflow, problems } = compileWorkflow(job, 'example.yml');
    expect(problems).toEqual([]);
    expect(workflow!.jobs.map((j) => j.matrix)).toEqual([
      { os: 'debian', node: '18' },
      { os: 'debian', node: '20', coverage: 'true' },
      { os: 'alpine', node: '20' },
      { os: 'fedora', node: '20' },
    ]);
    expect(text).toContain('The example gives `debian/18`, `debian/20` (with `coverage: true`), `alpine/20` and `fedora/20`.');
  });
});
