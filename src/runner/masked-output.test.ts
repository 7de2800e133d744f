import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { maskText } from '../domain/log-masking.js';
import type { OutputStream } from './executors/executor.js';
import { JOB_PATH } from './executors/spawn-step.js';
import { MaskedOutput } from './masked-output.js';

/** A MaskedOutput writing into memory. */
function capture(values: string[]) {
  const out: Buffer[] = [];
  const output = new MaskedOutput({ write: (d) => out.push(d) > 0, once: () => undefined }, values);
  return { output, text: () => Buffer.concat(out).toString() };
}

/** Secret values made of what quoting changes: quotes, backslashes, tabs, spaces, `$`, controls, unicode. */
const secretValue = fc
  .array(fc.constantFrom('a', 'Z', '7', "'", '"', '\\', '\t', ' ', '$', '`', '!', '#', '~', '=', ',', '*', '%', 'é', '日', '😀', '\x01', '\x7f', '\x1b'), { minLength: 6, maxLength: 14 })
  .map((chars) => chars.join(''));

const run = async (script: string, args: string[]) => (await promisify(execFile)('bash', ['-c', script, '_', ...args], { env, encoding: 'utf8' })).stdout.split('\0');

const env = { PATH: JOB_PATH, LANG: 'C.UTF-8' };

interface Printed {
  value: string;
  tool: string;
  stream: OutputStream;
  text: string;
  /** What precedes the shell word (`shell`, read back by bash) or the JSON text (`json`). */
  prefix: string;
  read: 'shell' | 'json';
}

const TOOLS = [
  { tool: 'bash -x', stream: 'stderr', prefix: '+ : ', read: 'shell' },
  { tool: 'bash -x (in a word)', stream: 'stderr', prefix: '+ : ', read: 'shell' },
  { tool: 'printf %q', stream: 'stdout', prefix: '', read: 'shell' },
  { tool: 'printf %q (LANG=C)', stream: 'stdout', prefix: '', read: 'shell' },
  { tool: 'declare -p', stream: 'stdout', prefix: 'declare -- v=', read: 'shell' },
  { tool: '${v@Q}', stream: 'stdout', prefix: '', read: 'shell' },
  { tool: 'jq --arg', stream: 'stdout', prefix: '', read: 'json' },
  { tool: 'jq -a --arg', stream: 'stdout', prefix: '', read: 'json' },
  { tool: 'jq -R', stream: 'stdout', prefix: '', read: 'json' },
] as const;

/** What the real tools in TOOLS print for each value (one bash for all: the machine may be busy), and JSON.stringify. */
async function printed(values: string[]): Promise<Printed[]> {
  const script = String.raw`
    out() { printf '%s\0' "$1"; }
    for v in "$@"; do
      out "$(bash -xc ': "$1"' _ "$v" 2>&1)"
      out "$(bash -xc ': "x$1y"' _ "$v" 2>&1)"
      out "$(printf %q "$v")"
      out "$(LANG=C bash -c 'printf %q "$1"' _ "$v")"
      out "$(declare -p v)"
      out "$` + '{v@Q}' + String.raw`"
      out "$(jq -n --arg v "$v" '$v')"
      out "$(jq -an --arg v "$v" '$v')"
      out "$(printf %s "$v" | jq -R .)"
    done`;
  const texts = await run(script, values);
  return values.flatMap((value, i) => [
    ...TOOLS.map((t, j) => ({ value, ...t, text: texts[i * TOOLS.length + j]! })),
    { value, tool: 'JSON.stringify', stream: 'stdout' as const, text: JSON.stringify(value), prefix: '', read: 'json' as const },
  ]);
}

/** Each shell word as bash reads it back (the word itself when it no longer parses). */
async function readShellWords(words: string[]): Promise<string[]> {
  const script = `for w in "$@"; do if eval "x=$w" 2>/dev/null; then printf '%s\\0' "$x"; else printf '%s\\0' "$w"; fi; done`;
  return (await run(script, words)).slice(0, words.length);
}

const readJson = (text: string) => {
  try {
    return String(JSON.parse(text));
  } catch {
    return text;
  }
};

describe('MaskedOutput', () => {
  it('masks a secret in every form bash -x, printf %q, declare -p and jq print it in', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(secretValue, { minLength: 10, maxLength: 10 }), async (values) => {
        const forms = await printed(values);
        expect(forms.every((f) => f.text.length > 0)).toBe(true);
        const masked = forms.map((f) => {
          const { output, text } = capture([f.value]);
          // Written in two halves, so a form split across writes is masked too.
          const bytes = Buffer.from(f.text);
          const half = bytes.length >> 1;
          output.write(bytes.subarray(0, half), f.stream);
          output.write(bytes.subarray(half), f.stream);
          output.endOfStep();
          return { ...f, masked: text() };
        });
        const shell = masked.filter((m) => m.read === 'shell');
        const readBack = await readShellWords(shell.map((m) => (m.masked.startsWith(m.prefix) ? m.masked.slice(m.prefix.length) : m.masked)));
        const seen = new Map(shell.map((m, i) => [m, readBack[i]!]));
        for (const m of masked) {
          const read = seen.get(m) ?? readJson(m.masked);
          const hidden = m.masked.includes('***') && !read.includes(m.value);
          expect(hidden, `${m.tool} printed ${JSON.stringify(m.text)}, masked as ${JSON.stringify(m.masked)}`).toBe(true);
        }
      }),
      { numRuns: 3, endOnFailure: true }, // each run spawns many processes: report the first failure unshrunk
    );
  }, 180_000);

  it('masks each stream on its own: output on one between the halves of a value on the other cannot unmask it', () => {
    const cuts = fc.array(fc.nat(), { maxLength: 6 });
    fc.assert(
      fc.property(secretValue, fc.string({ maxLength: 8 }), cuts, cuts, fc.array(fc.boolean(), { minLength: 16, maxLength: 16 }), (value, noise, outCuts, errCuts, order) => {
        const texts = { stdout: `out ${value} ${noise}${value}.`, stderr: `err ${noise}${value}!` };
        /** Each stream's bytes cut at the given points. */
        const pieces = (text: string, at: number[]) => {
          const bytes = Buffer.from(text);
          const points = [...new Set(at.map((n) => n % bytes.length))].sort((a, b) => a - b);
          return [0, ...points].map((from, i) => bytes.subarray(from, points[i] ?? bytes.length)).filter((p) => p.length > 0);
        };
        const queues = { stdout: pieces(texts.stdout, outCuts), stderr: pieces(texts.stderr, errCuts) };
        const { output, text } = capture([value]);
        for (let i = 0; queues.stdout.length + queues.stderr.length > 0; i++) {
          const stream: OutputStream = queues.stderr.length === 0 || (queues.stdout.length > 0 && order[i % order.length]) ? 'stdout' : 'stderr';
          output.write(queues[stream].shift()!, stream);
        }
        output.endOfStep();
        const out = text();
        expect(out).not.toContain(value);
        const whole = (s: string) => maskText(Buffer.from(s), [value]).toString();
        expect(out.length).toBe(whole(texts.stdout).length + whole(texts.stderr).length);
      }),
      { numRuns: 300 },
    );
  });
});
