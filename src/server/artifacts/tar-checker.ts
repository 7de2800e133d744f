import { AppError } from '../app-error.js';
import type { ArtifactLimit } from './artifact-storage.js';

const BLOCK = 512;
/** Pax headers and GNU long names are read whole; real ones are a few hundred bytes. */
const META_MAX = 1024 * 1024;

/** What the tar stream has held so far. */
export interface TarSummary {
  /** Bytes of the tar stream: the entries' data and their headers. */
  bytes: number;
  entries: number;
}

/** Entry types that are not files, directories or links, by their type flag. */
const SPECIAL: Record<string, string> = { '3': 'character device', '4': 'block device', '6': 'FIFO', S: 'sparse file' };
/** Types whose entries carry no data in the archive. */
const NO_DATA = new Set(['1', '2', '3', '4', '5', '6']);

/** Entry data fills whole blocks. */
const padded = (size: number) => Math.ceil(size / BLOCK) * BLOCK;
const notTar = (detail: string) => new AppError('artifact_not_tar', `The artifact is not a tar.gz archive: ${detail}.`);

/** A NUL-terminated string field. */
function text(block: Buffer, at: number, length: number): string {
  const field = block.subarray(at, at + length);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? length : end).toString('utf8');
}

/** A numeric header field: octal digits, or base-256 (GNU) when the first byte's high bit is set. */
function numeric(block: Buffer, at: number, length: number, what: string): number {
  if (block[at]! & 0x80) {
    if (block[at] === 0xff) throw notTar(`a header has a negative ${what}`);
    let value = block[at]! & 0x7f;
    for (let i = at + 1; i < at + length; i++) value = value * 256 + block[i]!;
    if (!Number.isSafeInteger(value)) throw notTar(`a header's ${what} is out of range`);
    return value;
  }
  const digits = block
    .subarray(at, at + length)
    .toString('latin1')
    .replace(/^[ \0]+|[ \0]+$/g, '');
  if (!/^[0-7]*$/.test(digits)) throw notTar(`a header's ${what} is not a number`);
  return digits === '' ? 0 : parseInt(digits, 8);
}

function checksumMatches(block: Buffer): boolean {
  const stored = numeric(block, 148, 8, 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

/** A member path that unpacks inside the target directory: relative, without `..`. */
function assertInside(name: string, what: string): void {
  if (name.startsWith('/') || name.split('/').includes('..')) {
    throw new AppError('artifact_unsafe_path', `The artifact holds ${what} "${name}", which points outside its directory (an absolute path or one with ".."); archive relative paths only.`);
  }
}

/** Pax extended header records: `LENGTH key=value\n`. */
function paxRecords(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  for (let at = 0; at < data.length; ) {
    const space = data.indexOf(0x20, at);
    const length = space < 0 ? NaN : Number(data.subarray(at, space).toString('latin1'));
    if (!Number.isInteger(length) || length <= space - at || at + length > data.length || data[at + length - 1] !== 0x0a) throw notTar('a pax header is malformed');
    const record = data.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq < 1) throw notTar('a pax header is malformed');
    records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return records;
}

/**
 * Reads a tar stream as it arrives, block by block, without keeping it: checks each header and
 * counts the bytes and entries, and throws (an `AppError`) at the first thing an artifact may not
 * hold. Call `push` with each chunk in order, then `end`.
 */
export class TarChecker {
  private bytes = 0;
  private entries = 0;
  private readonly block = Buffer.alloc(BLOCK);
  private filled = 0;
  /** Bytes of the current entry's data and padding still to come. */
  private skip = 0;
  /** The data of a pax header or GNU long name being read, and where it has got to. */
  private meta: { type: string; data: Buffer; filled: number } | undefined;
  /** What pax headers and GNU long names said about the next entry. */
  private next: { path?: string; linkpath?: string; size?: number } = {};
  /** Zero blocks in a row: one may be followed only by another, which ends the archive. */
  private zeros = 0;

  constructor(private readonly limit: ArtifactLimit) {}

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit.bytes) throw new AppError('artifact_too_large', `The artifact unpacks to more than ${this.limit.describe}.`);
    for (let at = 0; at < chunk.length && this.zeros < 2; ) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - at);
        if (this.meta) this.meta.filled += chunk.copy(this.meta.data, this.meta.filled, at, at + n);
        this.skip -= n;
        at += n;
        if (this.skip === 0 && this.meta) this.endMeta();
        continue;
      }
      const n = Math.min(BLOCK - this.filled, chunk.length - at);
      chunk.copy(this.block, this.filled, at, at + n);
      this.filled += n;
      at += n;
      if (this.filled === BLOCK) {
        this.filled = 0;
        this.header(this.block);
      }
    }
    // What follows the end-of-archive blocks is padding that tar itself ignores; it still counts.
  }

  end(): TarSummary {
    if (this.zeros < 2) {
      throw new AppError('artifact_tar_unterminated', 'The artifact’s tar archive ends without its end-of-archive blocks: it was cut short, or not written by tar.');
    }
    return { bytes: this.bytes, entries: this.entries };
  }

  private header(block: Buffer): void {
    if (block.every((b) => b === 0)) {
      this.zeros++;
      return;
    }
    if (this.zeros > 0) throw notTar('a lone zero block inside the archive');
    if (!checksumMatches(block)) throw notTar(this.entries === 0 ? 'its first header is not a tar header' : `the header after entry ${this.entries} is damaged`);
    const type = String.fromCharCode(block[156]!);
    const fieldSize = numeric(block, 124, 12, 'size');
    if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
      if (fieldSize > META_MAX) throw notTar(`a header extension of ${fieldSize} bytes`);
      // A global pax header ('g') says nothing about paths this check needs; it is skipped.
      this.meta = type === 'g' ? undefined : { type, data: Buffer.alloc(fieldSize), filled: 0 };
      this.skip = padded(fieldSize);
      if (this.skip === 0 && this.meta) this.endMeta();
      return;
    }
    // A pax `size` record stands for the entry's size field (for sizes the field cannot hold).
    const size = this.next.size ?? fieldSize;
    const ustar = block.subarray(257, 262).toString('latin1') === 'ustar';
    const prefix = ustar ? text(block, 345, 155) : '';
    const name = this.next.path ?? (prefix ? `${prefix}/${text(block, 0, 100)}` : text(block, 0, 100));
    const linkpath = this.next.linkpath ?? text(block, 157, 100);
    this.next = {};
    if (name === '') throw notTar('an entry without a name');
    if (SPECIAL[type]) throw new AppError('artifact_special_file', `The artifact holds "${name}", a ${SPECIAL[type]}; artifacts hold only files, directories and links.`);
    if (NO_DATA.has(type) && size !== 0) throw notTar(`"${name}" is a link or directory with ${size} bytes of data`);
    assertInside(name, 'the path');
    if (type === '1') assertInside(linkpath, 'a hard link to');
    this.entries++;
    this.skip = padded(size);
  }

  private endMeta(): void {
    const { type, data } = this.meta!;
    this.meta = undefined;
    if (type === 'L') this.next.path = text(data, 0, data.length);
    else if (type === 'K') this.next.linkpath = text(data, 0, data.length);
    else {
      const records = paxRecords(data);
      if ([...records.keys()].some((k) => k.startsWith('GNU.sparse.'))) throw new AppError('artifact_special_file', 'The artifact holds a sparse file; artifacts hold only files, directories and links.');
      const path = records.get('path');
      const linkpath = records.get('linkpath');
      const size = records.get('size');
      if (path !== undefined) this.next.path = path;
      if (linkpath !== undefined) this.next.linkpath = linkpath;
      if (size !== undefined) {
        if (!/^\d+$/.test(size) || !Number.isSafeInteger(Number(size))) throw notTar('a pax header has a size that is not a number');
        this.next.size = Number(size);
      }
    }
  }
}
