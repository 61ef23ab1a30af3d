/**
 * LZO1X decompression (what lzo1x_decompress_safe() accepts), written from
 * the stream format as Documentation/lzo.txt in the Linux tree describes
 * it: literal runs and four kinds of back-reference (M1 to M4), each
 * followed by 0 to 3 literals whose count the next instruction depends on,
 * ending with an M4 of distance 16384. Every read, write and look-behind
 * is bounds-checked; input left over after the end marker is an error, as
 * LZO_E_INPUT_NOT_CONSUMED is.
 */
import { CorruptDumpError } from '../../codec/index.js';

/** Why a stream is rejected, as liblzo2's error codes name it. */
export type LzoError = 'input overrun' | 'output overrun' | 'lookbehind overrun' | 'input not consumed' | 'no end marker';

function fail(why: LzoError, at: number): never {
  throw new CorruptDumpError(`LZO1X stream: ${why} at input byte ${at}`, { offset: at });
}

/**
 * Decompresses `src` into `out`, which bounds the output; returns the
 * number of bytes written. Throws CorruptDumpError for a broken stream.
 */
export function lzo1xDecompress(src: Uint8Array, out: Uint8Array): number {
  let ip = 0;
  let op = 0;
  const inEnd = src.length;
  const outEnd = out.length;
  const byte = (): number => {
    if (ip >= inEnd) fail('input overrun', ip);
    return src[ip++];
  };
  const literals = (n: number): void => {
    if (ip + n > inEnd) fail('input overrun', ip);
    if (op + n > outEnd) fail('output overrun', ip);
    out.set(src.subarray(ip, ip + n), op);
    ip += n;
    op += n;
  };
  const copyMatch = (distance: number, n: number): void => {
    const from = op - distance;
    if (from < 0) fail('lookbehind overrun', ip);
    if (op + n > outEnd) fail('output overrun', ip);
    // Byte by byte: the source may overlap what is being written (a repeated pattern).
    for (let i = 0; i < n; i++) out[op + i] = out[from + i];
    op += n;
  };
  /** A length continued in following bytes: each zero byte adds 255, the first non-zero ends it. */
  const longLength = (base: number): number => {
    let n = base;
    let b = byte();
    while (b === 0) {
      n += 255;
      b = byte();
    }
    return n + b;
  };

  // state: literals copied by the previous instruction (0, 1..3, or 4 meaning "4 or more").
  let state = 0;
  let t: number;
  if (inEnd > 0 && src[0] > 17) {
    ip = 1;
    const n = src[0] - 17;
    literals(n);
    state = n < 4 ? n : 4;
  }
  for (;;) {
    t = byte();
    let length: number;
    let distance: number;
    if (t < 16) {
      if (state === 0) {
        // 0000LLLL: a literal run of 4 or more.
        literals(3 + (t !== 0 ? t : longLength(15)));
        state = 4;
        continue;
      }
      const h = byte();
      if (state === 4) {
        // 0000DDSS after >= 4 literals: 3 bytes from 2049..3072 back.
        length = 3;
        distance = (h << 2) + ((t >> 2) & 3) + 2049;
      } else {
        // 0000DDSS after 1..3 literals: 2 bytes from up to 1 KiB back.
        length = 2;
        distance = (h << 2) + ((t >> 2) & 3) + 1;
      }
      copyMatch(distance, length);
      state = t & 3;
    } else if (t < 32) {
      // 0001HLLL + LE16: within 16..48 KiB; distance 16384 ends the stream.
      length = 2 + ((t & 7) !== 0 ? t & 7 : longLength(7));
      const lo = byte();
      const hi = byte();
      distance = 16384 + ((t & 8) << 11) + (lo >> 2) + (hi << 6);
      if (distance === 16384) {
        if (ip !== inEnd) fail('input not consumed', ip);
        return op;
      }
      copyMatch(distance, length);
      state = lo & 3;
    } else if (t < 64) {
      // 001LLLLL + LE16: within 16 KiB.
      length = 2 + ((t & 31) !== 0 ? t & 31 : longLength(31));
      const lo = byte();
      const hi = byte();
      distance = (lo >> 2) + (hi << 6) + 1;
      copyMatch(distance, length);
      state = lo & 3;
    } else {
      // 01LDDDSS / 1LLDDDSS + H: 3..8 bytes within 2 KiB.
      const h = byte();
      length = (t >> 5) + 1;
      distance = (h << 3) + ((t >> 2) & 7) + 1;
      copyMatch(distance, length);
      state = t & 3;
    }
    if (state !== 0) literals(state);
  }
}
