import { describe, expect, it } from 'vitest';
import { LogMasker, MIN_SECRET_LENGTH, maskText, secretForms } from './log-masking.js';

/** Feeds `text` to a masker in the given chunk sizes (cycled) and returns everything it emitted. */
function stream(values: string[], text: string, sizes: number[]): string {
  const masker = new LogMasker(values);
  const input = Buffer.from(text);
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < input.length; i++) {
    const size = sizes[i % sizes.length]!;
    out.push(masker.push(input.subarray(at, at + size)));
    at += size;
  }
  out.push(masker.flush());
  return Buffer.concat(out).toString();
}

const mask = (values: string[], text: string) => maskText(Buffer.from(text), values).toString();

describe('secretForms', () => {
  it('lists the value and its base64, base64url and URL encodings', () => {
    const value = 'p@ss word/+?>>';
    const forms = secretForms(value);
    expect(forms).toContain(value);
    const b64 = Buffer.from(value).toString('base64');
    expect(b64).toMatch(/=$/);
    expect(forms).toContain(b64);
    expect(forms).toContain(b64.replace(/=+$/, ''));
    expect(forms).toContain(Buffer.from(value).toString('base64url'));
    expect(forms).toContain(encodeURIComponent(value));
    expect(forms).toContain('p%40ss+word%2F%2B%3F%3E%3E');
    expect(new Set(forms).size).toBe(forms.length);
  });

  it('adds no URL form when encoding changes nothing, and drops forms that are too short', () => {
    expect(secretForms('abcdef')).toEqual(['abcdef', 'YWJjZGVm']);
    expect(secretForms('abcd').every((f) => f.length >= MIN_SECRET_LENGTH)).toBe(true);
  });

  it('adds each significant line of a multi-line value', () => {
    const key = '-----BEGIN KEY-----\r\n  b3BlbnNzaC1rZXk  \r\nAAAA\nab\n-----END KEY-----\n';
    const forms = secretForms(key);
    expect(forms).toEqual(expect.arrayContaining(['-----BEGIN KEY-----', 'b3BlbnNzaC1rZXk', 'AAAA', '-----END KEY-----']));
    expect(forms).not.toContain('ab');
    expect(forms).not.toContain('');
  });
});

describe('LogMasker', () => {
  const secret = 'hunter2-s3cret';
  const text = `login with ${secret} now\nand again:${secret}${secret}!\n`;
  const expected = 'login with *** now\nand again:******!\n';

  it('masks an occurrence split across chunks at every position', () => {
    for (let size = 1; size <= text.length; size++) expect(stream([secret], text, [size])).toBe(expected);
    for (let cut = 1; cut < text.length; cut++) expect(stream([secret], text, [cut, text.length])).toBe(expected);
  });

  it('masks base64 and URL-encoded forms, split or whole', () => {
    const value = 'tok en/with+chars';
    const b64 = Buffer.from(value).toString('base64');
    const line = `auth=${encodeURIComponent(value)} basic ${b64} raw ${b64.replace(/=+$/, '')}.`;
    expect(mask([value], line)).toBe('auth=*** basic *** raw ***.');
    for (let size = 1; size < line.length; size += 3) expect(stream([value], line, [size])).toBe('auth=*** basic *** raw ***.');
    expect(mask([value], `q=${new URLSearchParams({ v: value }).toString().slice(2)}&`)).toBe('q=***&');
  });

  it('masks each line of a multi-line secret printed on its own', () => {
    const key = '-----BEGIN KEY-----\nQUJDREVGR0hJSktMTU5P\n-----END KEY-----';
    expect(mask([key], 'key:\n    QUJDREVGR0hJSktMTU5P\n')).toBe('key:\n    ***\n');
    expect(mask([key], `${key}\n`)).toBe('***\n');
  });

  it('lets the longest of overlapping secrets win, and leaks no byte of either', () => {
    for (const values of [['abcd', 'abcdefgh'], ['abcdefgh', 'abcd'], ['cdefgh', 'abcd']]) {
      const line = 'x abcdefgh y abcd z';
      expect(mask(values, line)).toBe('x *** y *** z');
      for (let size = 1; size <= line.length; size++) expect(stream(values, line, [size])).toBe('x *** y *** z');
    }
    // A match that ends inside the held-back start of a longer one.
    const line = 'aaabcdefghij';
    for (let size = 1; size <= line.length; size++) expect(stream(['abcd', 'cdefghij'], line, [size])).toBe('aa***');
    for (let size = 1; size <= line.length; size++) expect(stream(['abcd', 'cdefghiX'], line, [size])).toBe('aa***efghij');
  });

  it('returns the same buffer without secrets, or when nothing needs masking', () => {
    const idle = new LogMasker([]);
    expect(idle.active).toBe(false);
    const chunk = Buffer.from('nothing to hide here');
    expect(idle.push(chunk)).toBe(chunk);
    expect(idle.flush().length).toBe(0);
    expect(maskText(chunk, [])).toBe(chunk);
    const busy = new LogMasker(['s3cr3t-value']);
    expect(busy.active).toBe(true);
    expect(busy.push(chunk)).toBe(chunk);
    expect(maskText(chunk, ['s3cr3t-value'])).toBe(chunk);
  });

  it('holds back a possible start of a secret until the next push or flush', () => {
    const masker = new LogMasker(['s3cr3t-value']);
    expect(masker.push(Buffer.from('echo s3cr')).toString()).toBe('echo ');
    expect(masker.push(Buffer.from('3t-v')).toString()).toBe('');
    expect(masker.push(Buffer.from('ague')).toString()).toBe('s3cr3t-vague');
    expect(masker.push(Buffer.from(' s3cr3t-v')).toString()).toBe(' ');
    expect(masker.flush().toString()).toBe('s3cr3t-v');
    expect(masker.flush().length).toBe(0);
  });

  it('masks random streams of overlapping secrets as a whole-text reference does', () => {
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const word = (min: number, max: number) => Array.from({ length: min + random(max - min + 1) }, () => 'abc'[random(3)]).join('');
    /** Every occurrence of every value, overlapping ones merged, each replaced by `***`. */
    const reference = (values: string[], text: string) => {
      const spans = values.flatMap((v) => [...text.matchAll(new RegExp(`(?=${v})`, 'g'))].map((m) => [m.index, m.index + v.length] as const));
      spans.sort((a, b) => a[0] - b[0]);
      let out = '';
      let cursor = 0;
      for (let i = 0; i < spans.length; ) {
        let [start, end] = spans[i++]!;
        while (i < spans.length && spans[i]![0] < end) end = Math.max(end, spans[i++]![1]);
        out += `${text.slice(cursor, start)}***`;
        cursor = end;
      }
      return out + text.slice(cursor);
    };
    for (let round = 0; round < 300; round++) {
      // Values of a, b, c only: their encodings never occur in such a text, only the values do.
      const values = Array.from({ length: 1 + random(3) }, () => word(4, 7));
      const text = word(0, 60);
      const sizes = Array.from({ length: 1 + random(4) }, () => 1 + random(9));
      expect(stream(values, text, sizes)).toBe(reference(values, text));
    }
  });

  it('masks multi-byte UTF-8 secrets split inside a character', () => {
    const value = 'clé-secrète-ü';
    const line = `a ${value} b`;
    for (let size = 1; size <= Buffer.byteLength(line); size++) expect(stream([value], line, [size])).toBe('a *** b');
  });

  it('scans a large log without secrets in it quickly', () => {
    const masker = new LogMasker(['secret-one', 'another-secret-value', '-----BEGIN KEY-----\nline-of-key\n-----END KEY-----']);
    const chunk = Buffer.from('line 0000001 of a long build log, with nothing secret in it\n'.repeat(1100));
    const started = performance.now();
    let bytes = 0;
    for (let i = 0; i < 3200; i++) bytes += masker.push(chunk).length;
    expect(bytes).toBe(chunk.length * 3200); // ~200 MiB
    expect(performance.now() - started).toBeLessThan(15_000);
  });
});
