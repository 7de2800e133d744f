/** A value an `if` expression computes with. */
export type ConditionValue = string | number | boolean | null;

export type ConditionNode =
  | { kind: 'literal'; value: ConditionValue }
  | { kind: 'property'; root: string; name: string }
  | { kind: 'not'; operand: ConditionNode }
  | { kind: 'binary'; op: '==' | '!=' | '&&' | '||'; left: ConditionNode; right: ConditionNode }
  | { kind: 'call'; name: string; args: ConditionNode[] };

/** Functions and how many arguments each takes. */
const CONDITION_FUNCTIONS: Readonly<Record<string, number>> = {
  success: 0,
  failure: 0,
  always: 0,
  cancelled: 0,
  contains: 2,
  startsWith: 2,
  endsWith: 2,
};

/** Names an expression can read properties of (`github` is an alias of `furrow`). */
const CONDITION_ROOTS = ['furrow', 'github', 'matrix', 'env'];

/** A syntax error; `column` is 1-based in the source as written (with its `${{ }}`, if any). */
export class ConditionSyntaxError extends Error {
  constructor(
    message: string,
    readonly column: number,
  ) {
    super(message);
  }
}

interface Token {
  type: 'string' | 'number' | 'name' | 'op' | 'end';
  text: string;
  value?: ConditionValue;
  at: number;
}

const TOKEN = /\s*(?:(')((?:[^']|'')*)(')?|(-?\d+(?:\.\d+)?)(?![\w.])|([A-Za-z_][A-Za-z0-9_-]*)|(==|!=|&&|\|\||[!().,]))/y;

function tokenize(text: string, offset: number): Token[] {
  const tokens: Token[] = [];
  TOKEN.lastIndex = 0;
  while (!/^\s*$/.test(text.slice(TOKEN.lastIndex))) {
    const start = TOKEN.lastIndex;
    const m = TOKEN.exec(text);
    if (!m) {
      const at = start + (text.slice(start).length - text.slice(start).trimStart().length);
      throw new ConditionSyntaxError(`unexpected "${text[at]}"`, offset + at + 1);
    }
    const at = offset + m.index + m[0].length - m[0].trimStart().length;
    if (m[1]) {
      if (!m[3]) throw new ConditionSyntaxError('string without its closing quote', at + 1);
      tokens.push({ type: 'string', text: m[0].trim(), value: m[2]!.replaceAll("''", "'"), at });
    } else if (m[4]) tokens.push({ type: 'number', text: m[4], value: Number(m[4]), at });
    else if (m[5]) tokens.push({ type: 'name', text: m[5], at });
    else tokens.push({ type: 'op', text: m[6]!, at });
  }
  tokens.push({ type: 'end', text: 'the end', at: offset + text.trimEnd().length });
  return tokens;
}

/** Parses an `if` expression; the `${{ }}` wrapper is optional. Throws ConditionSyntaxError. */
export function parseCondition(source: string): ConditionNode {
  const wrapped = /^(\s*\$\{\{)([\s\S]*)\}\}\s*$/.exec(source);
  const tokens = wrapped ? tokenize(wrapped[2]!, wrapped[1]!.length) : tokenize(source, 0);
  let i = 0;
  const peek = () => tokens[i]!;
  const fail = (message: string, token = peek()): never => {
    throw new ConditionSyntaxError(message, token.at + 1);
  };
  const accept = (text: string) => (peek().type === 'op' && peek().text === text ? tokens[i++] : undefined);
  const expect = (text: string, what: string) => accept(text) ?? fail(`expected ${what}, found ${describe(peek())}`);

  const binary = (ops: readonly ('==' | '!=' | '&&' | '||')[], next: () => ConditionNode) => (): ConditionNode => {
    let left = next();
    for (let op = ops.find((o) => accept(o)); op; op = ops.find((o) => accept(o))) left = { kind: 'binary', op, left, right: next() };
    return left;
  };
  const primary = (): ConditionNode => {
    const token = peek();
    if (accept('(')) {
      const inner = or();
      expect(')', 'a closing ")"');
      return inner;
    }
    if (token.type === 'string' || token.type === 'number') {
      i++;
      return { kind: 'literal', value: token.value! };
    }
    if (token.type !== 'name') return fail(`expected a value, found ${describe(token)}`);
    i++;
    if (['true', 'false', 'null'].includes(token.text)) return { kind: 'literal', value: token.text === 'null' ? null : token.text === 'true' };
    if (accept('(')) return call(token);
    if (!CONDITION_ROOTS.includes(token.text)) fail(`unknown name "${token.text}" (expressions read ${CONDITION_ROOTS.map((r) => `${r}.*`).join(', ')})`, token);
    expect('.', `a property after "${token.text}" (like ${token.text}.${token.text === 'env' ? 'NAME' : 'branch'})`);
    const name = peek();
    if (name.type !== 'name') fail(`expected a property name, found ${describe(name)}`);
    i++;
    if (peek().type === 'op' && peek().text === '.') fail(`${token.text}.${name.text} has no properties`);
    return { kind: 'property', root: token.text, name: name.text };
  };
  const call = (token: Token): ConditionNode => {
    const arity = CONDITION_FUNCTIONS[token.text];
    if (arity === undefined) fail(`unknown function "${token.text}" (functions: ${Object.keys(CONDITION_FUNCTIONS).join(', ')})`, token);
    const args: ConditionNode[] = [];
    if (!accept(')')) {
      do args.push(or());
      while (accept(','));
      expect(')', 'a closing ")"');
    }
    if (args.length !== arity) fail(`${token.text}() takes ${arity} argument${arity === 1 ? '' : 's'}, not ${args.length}`, token);
    return { kind: 'call', name: token.text, args };
  };
  const unary = (): ConditionNode => (accept('!') ? { kind: 'not', operand: unary() } : primary());
  const equality = binary(['==', '!='], unary);
  const and = binary(['&&'], equality);
  const or: () => ConditionNode = binary(['||'], and);

  if (peek().type === 'end') fail('the expression is empty');
  const tree = or();
  if (peek().type !== 'end') fail(`unexpected ${describe(peek())}`);
  return tree;
}

function describe(token: Token): string {
  return token.type === 'end' ? 'the end' : `"${token.text}"`;
}
