/**
 * LZO1X decompression (what lzo1x_decompress_safe() accepts), written from
 * the stream format as Documentation/lzo.txt in the Linux tree describes
 * it: literal runs and four kinds of back-reference (M1 to M4), each
 * followed by 0 to 3 literals whose count the next instruction depends on,
 * ending with an M4 of distance 16384. Every read, write and look-behind
 * is bounds-checked; input left over after the end marker is an error, as
 * LZO_E_INPUT_NOT_CONSUMED is. Written as one loop without closures: it
 * runs once per page of a dump.
 */
import { CorruptDumpError } from '../../codec/index.js';

/** Why a stream is rejected, as liblzo2's error codes name it. */
export type LzoError = 'input overrun' | 'output overrun' | 'lookbehind overrun' | 'input not consumed';

function fail(why: LzoError, at: number): never {
  throw new CorruptDumpError(`LZO1X stream: ${why} at input byte ${at}`, { offset: at });
}

/**
 * Decompresses `src` into `out`, which bounds the output; returns the
 * number of bytes written. Throws CorruptDumpError for a broken stream.
 */
export function lzo1xDecompress(src: Uint8Array, out: Uint8Array): number {
  const inEnd = src.length;
  const outEnd = out.length;
  let ip = 0;
  let op = 0;
  // state: literals copied by the previous instruction (0, 1..3, or 4 meaning "4 or more").
  let state = 0;
  let n: number;
  if (inEnd > 0 && src[0] > 17) {
    n = src[0] - 17;
    ip = 1;
    if (ip + n > inEnd) fail('input overrun', ip);
    if (op + n > outEnd) fail('output overrun', ip);
    for (let i = 0; i < n; i++) out[op++] = src[ip++];
    state = n < 4 ? n : 4;
  }
  for (;;) {
    if (ip >= inEnd) fail('input overrun', ip);
    const t = src[ip++];
    let length: number;
    let distance: number;
    if (t < 16) {
      if (state === 0) {
        // 0000LLLL: a literal run of 4 or more; a zero length continues in the next bytes.
        n = t;
        if (n === 0) {
          n = 15;
          for (;;) {
            if (ip >= inEnd) fail('input overrun', ip);
            const b = src[ip++];
            if (b !== 0) { n += b; break; }
            n += 255;
          }
        }
        n += 3;
        if (ip + n > inEnd) fail('input overrun', ip);
        if (op + n > outEnd) fail('output overrun', ip);
        out.set(src.subarray(ip, ip + n), op);
        ip += n;
        op += n;
        state = 4;
        continue;
      }
      if (ip >= inEnd) fail('input overrun', ip);
      const h = src[ip++];
      // 0000DDSS after 1..3 literals: 2 bytes up to 1 KiB back; after >= 4: 3 bytes 2049..3072 back.
      length = state === 4 ? 3 : 2;
      distance = (h << 2) + ((t >> 2) & 3) + (state === 4 ? 2049 : 1);
      state = t & 3;
    } else if (t < 64) {
      // 0001HLLL (16..48 KiB, distance 16384 ends the stream) and 001LLLLL (within 16 KiB), + LE16.
      const m4 = t < 32;
      const mask = m4 ? 7 : 31;
      length = t & mask;
      if (length === 0) {
        length = mask;
        for (;;) {
          if (ip >= inEnd) fail('input overrun', ip);
          const b = src[ip++];
          if (b !== 0) { length += b; break; }
          length += 255;
        }
      }
      length += 2;
      if (ip + 2 > inEnd) fail('input overrun', ip);
      const lo = src[ip];
      const hi = src[ip + 1];
      ip += 2;
      if (m4) {
        distance = 16384 + ((t & 8) << 11) + (lo >> 2) + (hi << 6);
        if (distance === 16384) {
          if (ip !== inEnd) fail('input not consumed', ip);
          return op;
        }
      } else {
        distance = (lo >> 2) + (hi << 6) + 1;
      }
      state = lo & 3;
    } else {
      // 01LDDDSS / 1LLDDDSS + H: 3..8 bytes within 2 KiB.
      if (ip >= inEnd) fail('input overrun', ip);
      const h = src[ip++];
      length = (t >> 5) + 1;
      distance = (h << 3) + ((t >> 2) & 7) + 1;
      state = t & 3;
    }
    const from = op - distance;
    if (from < 0) fail('lookbehind overrun', ip);
    if (op + length > outEnd) fail('output overrun', ip);
    // Byte by byte: the source may overlap what is being written (a repeated pattern).
    for (let i = 0; i < length; i++) out[op + i] = out[from + i];
    op += length;
    if (state !== 0) {
      if (ip + state > inEnd) fail('input overrun', ip);
      if (op + state > outEnd) fail('output overrun', ip);
      for (let i = 0; i < state; i++) out[op++] = src[ip++];
    }
  }
}
