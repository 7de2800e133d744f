/** Secrets shorter than this are refused: masking them would hide too much of a log. */
export const MIN_SECRET_LENGTH = 4;

const MASK = Buffer.from('***');

/**
 * The strings to mask for one secret: the value, the forms a shell or a JSON encoder prints it in,
 * the encodings a script commonly prints it in (base64 with and without padding, base64url, URL
 * and form encoding) and, for a multi-line value such as an SSH key, each of its lines in its
 * printed forms (tools print keys line by line, or re-indented).
 */
export function secretForms(value: string): string[] {
  const base64 = Buffer.from(value, 'utf8').toString('base64');
  const uri = encodeURIComponent(value);
  const forms = [
    ...printedForms(value),
    base64,
    base64.replace(/=+$/, ''),
    Buffer.from(value, 'utf8').toString('base64url'),
    uri,
    uri.replace(/%20/g, '+'),
    new URLSearchParams({ v: value }).toString().slice(2),
  ];
  const lines = value.split(/\r?\n/);
  if (lines.length > 1) forms.push(...lines.flatMap((line) => printedForms(line.trim())));
  return [...new Set(forms)].filter((f) => f.length >= MIN_SECRET_LENGTH);
}

/**
 * Characters `printf %q` puts a backslash before; `~` only after `=` or `:` or at a word's start, `#`
 * only there (see below). A value with a tab or a newline it prints ANSI-C quoted instead.
 */
const BACKSLASHED = /[ !"$&'()*,;<>?[\\\]^`{|}]|(?<=[=:])~/g;
/** Escapes in bash's `$'…'` quoting that are not octal. */
const ANSI_C: Record<string, string> = { '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v', '\x1b': '\\E', '\\': '\\\\', "'": "\\'" };
const JSON_SHORT: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * The value as a shell or a JSON encoder prints it, each without its enclosing quotes, so that a
 * form also matches when the value is part of a longer quoted word: single-quoted (`set -x`,
 * `${v@Q}`), backslash-escaped (`printf %q`; a leading `#` or `~` gets a backslash there too, which
 * the form leaves out, so that it matches both), double-quoted (`declare -p`), ANSI-C `$'…'` (all of
 * them, for control characters; with octal bytes for non-ASCII outside a UTF-8 locale), and
 * JSON-escaped (JSON.stringify; jq, which also escapes DEL; and with `\uXXXX` for non-ASCII).
 */
function printedForms(value: string): string[] {
  return [
    value,
    value.replace(/'/g, "'\\''"),
    value.replace(BACKSLASHED, '\\$&'),
    value.replace(/["\\$`]/g, '\\$&'),
    ansiC(value, false),
    ansiC(value, true),
    ...[false, true].flatMap((del) => [json(value, del, false), json(value, del, true)]),
  ];
}

const octal = (bytes: Buffer) => [...bytes].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');

function ansiC(value: string, octalNonAscii: boolean): string {
  return value.replace(/[\p{Cc}\\']|[^\x00-\x7f]/gu, (c) => {
    if (c > '\x7f' && !octalNonAscii && !/\p{Cc}/u.test(c)) return c;
    return ANSI_C[c] ?? octal(Buffer.from(c, 'utf8'));
  });
}

function json(value: string, escapeDel: boolean, ascii: boolean): string {
  return value.replace(/["\\\x00-\x1f\x7f-\uffff]/g, (c) => {
    const code = c.charCodeAt(0);
    if ((code === 0x7f && !escapeDel) || (code > 0x7f && !ascii)) return c;
    return JSON_SHORT[c] ?? `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** A masked byte range; `continued` when its `***` went out with an earlier push. */
interface Span {
  start: number;
  end: number;
  continued: boolean;
}

/**
 * Replaces every occurrence of any form of the given secrets in a byte stream with `***`, also
 * when an occurrence is split across chunks. Overlapping occurrences are masked as one, so the
 * longest one wins and no byte of either leaks.
 *
 * Each push holds back the end of its chunk that could be the start of a form (at most the longest
 * form's length − 1 bytes) and emits it with the next push or at flush. Without secrets, push
 * returns its chunk untouched. Not safe for concurrent use; one masker per stream.
 */
export class LogMasker {
  readonly active: boolean;
  private readonly forms: Buffer[];
  private held: Buffer = Buffer.alloc(0);
  /** How many leading bytes of `held` an already emitted `***` covers. */
  private heldMasked = 0;

  constructor(values: string[]) {
    const forms = new Set(values.flatMap(secretForms));
    this.forms = [...forms].map((f) => Buffer.from(f, 'utf8'));
    this.active = this.forms.length > 0;
  }

  push(chunk: Buffer): Buffer {
    if (!this.active) return chunk;
    const data = this.held.length === 0 ? chunk : Buffer.concat([this.held, chunk]);
    return this.emit(data, this.holdFrom(data));
  }

  /**
   * Masks a whole text on its own, outside this masker's stream (e.g. each chunk a runner sent,
   * masked again): nothing is held back. A masker used this way keeps its forms for every text.
   */
  mask(text: Buffer): Buffer {
    return this.active ? this.emit(text, text.length) : text;
  }

  /** Emits what is held back; call once at the end of the stream. */
  flush(): Buffer {
    if (!this.active || this.held.length === 0) return Buffer.alloc(0);
    return this.emit(this.held, this.held.length);
  }

  /** Emits `data` up to `holdFrom` (and any `***` reaching past it), and holds back the rest. */
  private emit(data: Buffer, holdFrom: number): Buffer {
    const spans = this.spans(data);
    const out: Buffer[] = [];
    let cursor = 0;
    for (const span of spans) {
      // A span starting in the held-back tail is found again, whole, with the next push.
      if (span.start >= holdFrom && !span.continued) break;
      if (span.start > cursor) out.push(data.subarray(cursor, span.start));
      if (!span.continued) out.push(MASK);
      cursor = span.end;
    }
    if (cursor < holdFrom) out.push(data.subarray(cursor, holdFrom));
    this.held = Buffer.from(data.subarray(holdFrom));
    this.heldMasked = Math.max(0, cursor - holdFrom);
    if (out.length === 1 && out[0]!.length === data.length) return data;
    return Buffer.concat(out);
  }

  /** Occurrences of every form in `data`, overlapping ones merged, in order. */
  private spans(data: Buffer): Span[] {
    const found: Span[] = this.heldMasked > 0 ? [{ start: 0, end: this.heldMasked, continued: true }] : [];
    for (const form of this.forms) {
      for (let at = data.indexOf(form); at !== -1; at = data.indexOf(form, at + 1)) {
        found.push({ start: at, end: at + form.length, continued: false });
      }
    }
    if (found.length <= 1) return found;
    found.sort((a, b) => a.start - b.start || Number(b.continued) - Number(a.continued));
    const merged: Span[] = [found[0]!];
    for (const span of found.slice(1)) {
      const last = merged[merged.length - 1]!;
      if (span.start < last.end) last.end = Math.max(last.end, span.end);
      else merged.push(span);
    }
    return merged;
  }

  /** Where the longest tail of `data` that is a proper prefix of some form starts. */
  private holdFrom(data: Buffer): number {
    let from = data.length;
    for (const form of this.forms) {
      const first = form[0]!;
      // Only tails shorter than the form, and longer than one already found, can move `from`.
      for (let at = data.indexOf(first, Math.max(0, data.length - form.length + 1)); at !== -1 && at < from; at = data.indexOf(first, at + 1)) {
        if (form.subarray(0, data.length - at).equals(data.subarray(at))) {
          from = at;
          break;
        }
      }
    }
    return from;
  }
}

/** Masks one whole text at once, as a LogMasker would. */
export function maskText(text: Buffer, values: string[]): Buffer {
  return new LogMasker(values).mask(text);
}
