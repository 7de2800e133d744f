import { execFileSync } from 'node:child_process';
import { linkSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { TarChecker, type TarSummary } from './tar-checker.js';

const LIMIT = { bytes: 64 * 1024 * 1024, describe: 'the test limit' };
const dir = mkdtempSync(path.join(tmpdir(), 'furrow-tar-checker-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A real tar of files with these contents, in blocks of 512 bytes only (`-b 1`): no padding after its end. */
function tar(files: Record<string, string>, flags: string[] = []): Buffer {
  const root = mkdtempSync(path.join(dir, 'src-'));
  for (const [name, content] of Object.entries(files)) {
    execFileSync('mkdir', ['-p', path.join(root, path.dirname(name))]);
    writeFileSync(path.join(root, name), content);
  }
  return execFileSync('tar', ['-c', '-b', '1', ...flags, '-C', root, '--', ...Object.keys(files)], { maxBuffer: 1 << 26 });
}

/** Checks `data` fed in pieces cut at `cuts`; the summary, or the code of the error. */
function check(data: Buffer, cuts: number[] = [], limit = LIMIT): TarSummary | string {
  const checker = new TarChecker(limit);
  try {
    let at = 0;
    for (const cut of [...cuts].sort((a, b) => a - b).filter((c) => c > 0 && c < data.length)) {
      checker.push(data.subarray(at, cut));
      at = cut;
    }
    checker.push(data.subarray(at));
    return checker.end();
  } catch (err) {
    return (err as { code: string }).code;
  }
}

/** A header block with the given fields and a correct checksum. */
function header(fields: { name?: string; type?: string; size?: Buffer | number; linkname?: string }): Buffer {
  const block = Buffer.alloc(512);
  block.write(fields.name ?? 'file.txt', 0);
  block.write('0000644\0', 100);
  if (Buffer.isBuffer(fields.size)) fields.size.copy(block, 124);
  else block.write(`${(fields.size ?? 0).toString(8).padStart(11, '0')}\0`, 124);
  block.write(fields.type ?? '0', 156);
  block.write(fields.linkname ?? '', 157);
  block.write('ustar\x0000', 257);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return block;
}
const END = Buffer.alloc(1024);

describe('TarChecker', () => {
  const files = { 'a.txt': 'a'.repeat(700), 'dir/b.txt': 'b', [`${'n'.repeat(150)}/long-name.txt`]: 'long' };

  it('gives the same answer however the stream is cut into chunks, in every format', () => {
    for (const format of ['gnu', 'pax', 'ustar', 'v7']) {
      const data = tar(format === 'v7' ? { 'a.txt': 'a', 'b.txt': 'b' } : files, [`--format=${format}`]);
      const whole = check(data);
      expect(whole, format).toEqual({ bytes: data.length, entries: format === 'v7' ? 2 : 3 });
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 0, max: data.length }), { maxLength: 20 }), (cuts) => {
          expect(check(data, cuts)).toEqual(whole);
        }),
      );
    }
  });

  it('refuses every strict prefix of an archive', () => {
    const data = tar(files, ['--format=pax']);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: data.length - 1 }), fc.array(fc.integer({ min: 0, max: data.length }), { maxLength: 5 }), (length, cuts) => {
        expect(check(data.subarray(0, length), cuts)).toMatch(/^artifact_(tar_unterminated|not_tar)$/);
      }),
    );
  });

  it('never throws anything but its own errors, whatever the bytes', () => {
    const data = tar(files, ['--format=gnu']);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: data.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const mutated = Buffer.from(data);
        mutated[at]! ^= xor;
        const result = check(mutated);
        if (typeof result === 'string') expect(result).toMatch(/^artifact_[a-z_]+$/);
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), (bytes) => {
        expect(check(Buffer.from(bytes))).toMatch(/^artifact_[a-z_]+$/);
      }),
    );
  });

  it('stops at the limit, counting headers as well as data', () => {
    const data = tar({ 'a.txt': 'x'.repeat(4000) });
    expect(check(data, [], { bytes: data.length, describe: '' })).toEqual({ bytes: data.length, entries: 1 });
    expect(check(data, [], { bytes: data.length - 1, describe: 'the 1 KiB limit' })).toBe('artifact_too_large');
  });

  it('refuses hard links that leave the directory, and sizes it cannot trust', () => {
    const root = mkdtempSync(path.join(dir, 'links-'));
    writeFileSync(path.join(root, 'a'), 'a');
    linkSync(path.join(root, 'a'), path.join(root, 'b'));
    const links = execFileSync('tar', ['-c', '-b', '1', '-C', root, 'a', 'b']);
    expect(check(links)).toEqual({ bytes: links.length, entries: 2 });

    expect(check(Buffer.concat([header({ name: 'ok', type: '1', linkname: '../../etc/passwd' }), END]))).toBe('artifact_unsafe_path');
    expect(check(Buffer.concat([header({ name: 'ok', type: '1', linkname: '/etc/passwd' }), END]))).toBe('artifact_unsafe_path');
    // Symbolic links may point anywhere: tar, run as the job user, does not follow them when unpacking.
    expect(check(Buffer.concat([header({ name: 'ok', type: '2', linkname: '/etc/passwd' }), END]))).toEqual({ bytes: 1536, entries: 1 });
    expect(check(Buffer.concat([header({ name: 'dir/', type: '5', size: 512 }), Buffer.alloc(512), END]))).toBe('artifact_not_tar');
    expect(check(Buffer.concat([header({ type: 'S' }), END]))).toBe('artifact_special_file');
    // GNU's base-256 sizes, for members of 8 GiB and more.
    const big = Buffer.alloc(12);
    big[0] = 0x80;
    big.writeUInt32BE(1024, 8);
    expect(check(Buffer.concat([header({ size: big }), Buffer.alloc(1024), END]))).toEqual({ bytes: 2560, entries: 1 });
    big[0] = 0xff;
    expect(check(Buffer.concat([header({ size: big }), END]))).toBe('artifact_not_tar');
  });

  it('reads paths and sizes from pax records, and refuses sparse files and malformed records', () => {
    const pax = (records: string) => {
      const data = Buffer.from(records);
      return Buffer.concat([header({ name: 'PaxHeader', type: 'x', size: data.length }), data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
    };
    const record = (key: string, value: string) => {
      const body = ` ${key}=${value}\n`;
      let length = body.length + 1;
      if (String(length).length + body.length !== length) length = String(length + 1).length + body.length;
      return `${length}${body}`;
    };
    expect(check(Buffer.concat([pax(record('path', '../escape')), header({ name: 'innocent' }), END]))).toBe('artifact_unsafe_path');
    // The pax size wins over the header's: 512 bytes of data follow, not 0.
    expect(check(Buffer.concat([pax(record('size', '512')), header({ size: 0 }), Buffer.alloc(512, 1), END]))).toEqual({ bytes: 512 * 6, entries: 1 });
    expect(check(Buffer.concat([pax(record('GNU.sparse.size', '100')), header({}), END]))).toBe('artifact_special_file');
    expect(check(Buffer.concat([pax('99 path=x\n'), header({}), END]))).toBe('artifact_not_tar');
    expect(check(Buffer.concat([header({}), Buffer.alloc(512), header({ name: 'after-a-lone-zero-block' }), END]))).toBe('artifact_not_tar');
  });
});
