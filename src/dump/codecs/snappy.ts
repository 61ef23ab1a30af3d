/**
 * Snappy raw-format decompression (the format snappy_uncompress() takes,
 * per format_description.txt of google/snappy): a varint of the
 * uncompressed length, then literals and copies with 1, 2 or 4 byte
 * offsets. Bounds-checked; the output must be exactly the declared length.
 */
import { CorruptDumpError } from '../../codec/index.js';

function fail(why: string, at: number): never {
  throw new CorruptDumpError(`snappy stream: ${why} at input byte ${at}`, { offset: at });
}

/** The uncompressed length a snappy stream declares (GetUncompressedLength). */
export function snappyUncompressedLength(src: Uint8Array): { length: number; headerBytes: number } {
  let length = 0;
  for (let i = 0; i < 5; i++) {
    if (i >= src.length) fail('input overrun in the length', i);
    const b = src[i];
    length += (b & 0x7f) * 2 ** (7 * i);
    if ((b & 0x80) === 0) {
      if (length > 0xffffffff) fail('length above 2^32', i);
      return { length, headerBytes: i + 1 };
    }
  }
  return fail('length varint longer than 5 bytes', 5);
}

/** Decompresses into `out`; the declared length must equal out.length. Returns bytes written. */
export function snappyDecompress(src: Uint8Array, out: Uint8Array): number {
  const { length, headerBytes } = snappyUncompressedLength(src);
  if (length !== out.length) fail(`declared length ${length}, expected ${out.length}`, 0);
  let ip = headerBytes;
  let op = 0;
  const need = (n: number): void => { if (ip + n > src.length) fail('input overrun', ip); };
  while (ip < src.length) {
    const tag = src[ip++];
    const kind = tag & 3;
    if (kind === 0) {
      let len = (tag >> 2) + 1;
      if (len > 60) {
        const extra = len - 60;
        need(extra);
        len = 0;
        for (let i = 0; i < extra; i++) len += src[ip + i] * 2 ** (8 * i);
        len += 1;
        ip += extra;
      }
      need(len);
      if (op + len > out.length) fail('output overrun', ip);
      out.set(src.subarray(ip, ip + len), op);
      ip += len;
      op += len;
      continue;
    }
    let len: number;
    let offset: number;
    if (kind === 1) {
      need(1);
      len = 4 + ((tag >> 2) & 7);
      offset = ((tag >> 5) << 8) | src[ip++];
    } else if (kind === 2) {
      need(2);
      len = (tag >> 2) + 1;
      offset = src[ip] | (src[ip + 1] << 8);
      ip += 2;
    } else {
      need(4);
      len = (tag >> 2) + 1;
      offset = (src[ip] | (src[ip + 1] << 8) | (src[ip + 2] << 16)) + src[ip + 3] * 2 ** 24;
      ip += 4;
    }
    if (offset === 0 || offset > op) fail(`copy offset ${offset} with ${op} bytes written`, ip);
    if (op + len > out.length) fail('output overrun', ip);
    for (let i = 0; i < len; i++) out[op + i] = out[op - offset + i];
    op += len;
  }
  if (op !== out.length) fail(`stream ended after ${op} of ${out.length} bytes`, ip);
  return op;
}
