import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeChunk, encodeChunk } from './log-encoding.js';

describe('log chunk encoding', () => {
  it('deflates text and gives back the same bytes', async () => {
    const text = Buffer.from(Array.from({ length: 20_000 }, (_, i) => `line ${i}: compiling module ${i % 97}\n`).join(''));
    const encoded = await encodeChunk(text);
    expect(encoded.compressed).toBe(true);
    expect(encoded.data.byteLength).toBeLessThan(text.byteLength / 5);
    expect(Buffer.compare(await decodeChunk(encoded.data, true), text)).toBe(0);
  });

  it('stores output that does not compress, and small chunks, as they are', async () => {
    const noise = randomBytes(256 * 1024);
    const encoded = await encodeChunk(noise);
    expect(encoded.compressed).toBe(false);
    expect(Buffer.compare(encoded.data, noise)).toBe(0);
    const small = await encodeChunk(Buffer.from('a'.repeat(1000)));
    expect(small.compressed).toBe(false);
  });

  it('encodes a view into a larger buffer by its own bytes only', async () => {
    const big = Buffer.from('x'.repeat(10_000) + 'y'.repeat(10_000));
    const view = new Uint8Array(big.buffer, big.byteOffset + 10_000, 10_000);
    const encoded = await encodeChunk(view);
    expect((await decodeChunk(encoded.data, encoded.compressed)).toString()).toBe('y'.repeat(10_000));
  });
});
