import { ConditionSyntaxError, parseCondition, type ConditionNode, type ConditionValue } from './parse-condition.js';
import type { ConditionContext } from './workflow-model.js';

const STATUS_FUNCTIONS = ['success', 'failure', 'always', 'cancelled'];

/** GitHub names that read a `furrow.*` property under another name. */
const GITHUB_ALIASES: Readonly<Record<string, keyof ConditionContext['furrow']>> = { event_name: 'event' };

/** Why an `if` expression is invalid (with the column in the expression), or undefined when it is fine. */
export function checkCondition(source: string): string | undefined {
  try {
    parseCondition(source);
    return undefined;
  } catch (err) {
    if (err instanceof ConditionSyntaxError) return `${err.message} at column ${err.column} of the expression`;
    throw err;
  }
}

/**
 * Whether a job or step with this `if` runs. Without a status function (success(), failure(),
 * always(), cancelled()) the expression means `success() && (expr)`, as on GitHub; a null
 * source means `success()`. The source must have passed checkCondition.
 */
export function evaluateCondition(source: string | null, ctx: ConditionContext): boolean {
  if (source === null) return ctx.status === 'success';
  const tree = parseCondition(source);
  const value = truthy(evaluate(tree, ctx));
  return usesStatus(tree) ? value : ctx.status === 'success' && value;
}

function usesStatus(node: ConditionNode): boolean {
  switch (node.kind) {
    case 'call':
      return STATUS_FUNCTIONS.includes(node.name) || node.args.some(usesStatus);
    case 'not':
      return usesStatus(node.operand);
    case 'binary':
      return usesStatus(node.left) || usesStatus(node.right);
    default:
      return false;
  }
}

function evaluate(node: ConditionNode, ctx: ConditionContext): ConditionValue {
  switch (node.kind) {
    case 'literal':
      return node.value;
    case 'property':
      return property(node.root, node.name, ctx);
    case 'not':
      return !truthy(evaluate(node.operand, ctx));
    case 'binary': {
      const left = evaluate(node.left, ctx);
      // && and || yield an operand, like GitHub (and JavaScript); the right side is evaluated lazily.
      if (node.op === '&&') return truthy(left) ? evaluate(node.right, ctx) : left;
      if (node.op === '||') return truthy(left) ? left : evaluate(node.right, ctx);
      const equal = looselyEqual(left, evaluate(node.right, ctx));
      return node.op === '==' ? equal : !equal;
    }
    case 'call':
      return call(node.name, node.args.map((arg) => evaluate(arg, ctx)), ctx);
  }
}

function property(root: string, name: string, ctx: ConditionContext): ConditionValue {
  const own = <T extends object>(record: T, key: string) => (Object.hasOwn(record, key) ? (record[key as keyof T] as ConditionValue) : null);
  if (root === 'matrix') return own(ctx.matrix, name);
  if (root === 'env') return own(ctx.env, name);
  return own(ctx.furrow, root === 'github' ? (GITHUB_ALIASES[name] ?? name) : name);
}

function call(name: string, args: ConditionValue[], ctx: ConditionContext): ConditionValue {
  const [a, b] = args.map((arg) => text(arg).toLowerCase());
  switch (name) {
    case 'success':
      return ctx.status === 'success';
    case 'failure':
      return ctx.status === 'failure';
    case 'cancelled':
      return ctx.status === 'cancelled';
    case 'always':
      return true;
    case 'contains':
      return a!.includes(b!);
    case 'startsWith':
      return a!.startsWith(b!);
    default:
      return a!.endsWith(b!);
  }
}

function truthy(value: ConditionValue): boolean {
  return value !== null && value !== false && value !== 0 && value !== '' && !Number.isNaN(value);
}

function text(value: ConditionValue): string {
  return value === null ? '' : String(value);
}

/** GitHub's `==`: strings ignore case; values of different types are compared as numbers. */
function looselyEqual(a: ConditionValue, b: ConditionValue): boolean {
  if (typeof a === 'string' && typeof b === 'string') return a.toLowerCase() === b.toLowerCase();
  if (typeof a === typeof b) return a === b;
  return toNumber(a) === toNumber(b);
}

function toNumber(value: ConditionValue): number {
  if (value === null) return 0;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'string') return value.trim() === '' ? 0 : Number(value);
  return value;
}
