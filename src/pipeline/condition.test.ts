import { describe, expect, it } from 'vitest';
import { checkCondition, evaluateCondition } from './condition.js';
import type { ConditionContext } from './workflow-model.js';

function ctx(status: ConditionContext['status'], furrow: Partial<ConditionContext['furrow']> = {}): ConditionContext {
  return {
    furrow: { event: 'push', ref: 'refs/heads/main', branch: 'main', tag: null, sha: 'abc123', workflow: 'CI', run_number: 7, ...furrow },
    matrix: { os: 'linux' },
    env: { DEPLOY: 'yes' },
    status,
  };
}

describe('evaluateCondition', () => {
  const cases: [string | null, ConditionContext, boolean][] = [
    [null, ctx('success'), true],
    [null, ctx('failure'), false],
    ["furrow.branch == 'main'", ctx('success'), true],
    ["furrow.branch == 'MAIN'", ctx('success'), true], // strings compare ignoring case
    ["furrow.branch == 'main'", ctx('success', { branch: 'dev' }), false],
    // Without a status function the expression only counts while everything succeeded.
    ["furrow.branch == 'main'", ctx('failure'), false],
    ["failure() && furrow.event == 'push'", ctx('failure'), true],
    ["failure() && furrow.event == 'push'", ctx('success'), false],
    ['always()', ctx('cancelled'), true],
    ['cancelled()', ctx('cancelled'), true],
    ['success()', ctx('cancelled'), false],
    // A skipped need: only always() holds, so only such jobs still run.
    ["furrow.branch == 'main'", ctx('skipped'), false],
    ['failure() || cancelled()', ctx('skipped'), false],
    ["always() && furrow.branch == 'main'", ctx('skipped'), true],
    ["contains(env.DEPLOY, 'always(')", ctx('skipped'), false],
    ["${{ github.ref == 'refs/heads/main' }}", ctx('success'), true],
    ["github.event_name != 'schedule'", ctx('success'), true],
    ["startsWith(github.ref, 'refs/tags/')", ctx('success', { ref: 'refs/tags/v1', branch: null, tag: 'v1' }), true],
    ["endsWith(furrow.sha, '123') && contains(furrow.workflow, 'c')", ctx('success'), true],
    ["matrix.os == 'linux' && env.DEPLOY == 'yes'", ctx('success'), true],
    ['furrow.tag', ctx('success'), false], // null is falsy
    ['furrow.nothing == null', ctx('success'), true], // unknown properties are null
    ['furrow.run_number == 7', ctx('success'), true],
    ["furrow.run_number == '7'", ctx('success'), true], // mixed types compare as numbers
    ["!(furrow.branch == 'main') || always()", ctx('failure'), true],
    ["'it''s' == 'IT''S'", ctx('success'), true],
  ];
  it.each(cases)('%s -> %s', (source, context, expected) => {
    expect(evaluateCondition(source, context)).toBe(expected);
  });
});

describe('checkCondition', () => {
  it('accepts valid expressions, with or without ${{ }}', () => {
    expect(checkCondition("github.ref == 'refs/heads/main' && !cancelled()")).toBeUndefined();
    expect(checkCondition("${{ contains(env.X, 'a') }}")).toBeUndefined();
  });

  it('names the mistake and its column', () => {
    expect(checkCondition("furrow.branch = 'main'")).toBe('unexpected "=" at column 15 of the expression');
    expect(checkCondition("furrow.branch == 'main")).toBe('string without its closing quote at column 18 of the expression');
    expect(checkCondition('succes()')).toBe('unknown function "succes" (functions: success, failure, always, cancelled, contains, startsWith, endsWith) at column 1 of the expression');
    expect(checkCondition("contains('a')")).toBe('contains() takes 2 arguments, not 1 at column 1 of the expression');
    expect(checkCondition("secrets.TOKEN == 'x'")).toBe('unknown name "secrets" (expressions read furrow.*, github.*, matrix.*, env.*) at column 1 of the expression');
    expect(checkCondition('(always()')).toBe('expected a closing ")", found the end at column 10 of the expression');
    expect(checkCondition('${{ always() && }}')).toBe('expected a value, found the end at column 16 of the expression');
    expect(checkCondition('')).toBe('the expression is empty at column 1 of the expression');
  });
});
