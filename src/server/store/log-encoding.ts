import { promisify } from 'node:util';
import { deflateRaw, inflateRaw } from 'node:zlib';

const deflate = promisify(deflateRaw);
const inflate = promisify(inflateRaw);

/** Below this a chunk is stored as it is: compressing it would not pay for itself. */
const MIN_BYTES = 4096;
/** How much of a chunk is tried first, so output that does not compress costs little. */
const SAMPLE_BYTES = 64 * 1024;

export interface EncodedChunk {
  data: Buffer;
  compressed: boolean;
}

/**
 * Log output is mostly text that compresses many times over; storing it deflated spares the
 * database most of its write work (a 200 MB build log becomes a few MB). Compression runs on
 * libuv's thread pool, and output that does not compress (binary, already compressed) is
 * recognised from a sample and stored raw.
 */
export async function encodeChunk(chunk: Uint8Array): Promise<EncodedChunk> {
  const raw = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (raw.byteLength < MIN_BYTES) return { data: raw, compressed: false };
  const sample = raw.subarray(0, SAMPLE_BYTES);
  if ((await deflate(sample, { level: 1 })).byteLength > sample.byteLength * 0.8) return { data: raw, compressed: false };
  const packed = await deflate(raw, { level: 1 });
  return packed.byteLength < raw.byteLength ? { data: packed, compressed: true } : { data: raw, compressed: false };
}

export function decodeChunk(data: Buffer, compressed: boolean): Promise<Buffer> | Buffer {
  return compressed ? inflate(data) : data;
}
