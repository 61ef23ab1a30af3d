/**
 * The LKCD run-length encoding (dh_dump_compress == DUMP_COMPRESS_RLE).
 *
 * Encoder: the kernel's dump_compress_rle (K-V9 drivers/dump/dump_rle.c).
 * Decoder: crash's lkcd_uncompress_RLE (lkcd_common.c). The byte grammar:
 *
 *   00 00      one 0x00 byte
 *   00 N V     N >= 1: N + 1 copies of V
 *   B          B != 0: the literal byte B
 *
 * libkdumpfile's uncompress_rle (src/kdumpfile/util.c) and the encoder of
 * its test suite (tests/rle.c) read and write `00 N V` as N copies, not
 * N + 1. The encoder here is the kernel's; the decoder reads either
 * convention, chosen per dump by the LKCD reader (rleConventionOf).
 */
import { CorruptDumpError, InternalError } from '../../codec/errors.js';

/** The escape byte that starts `00 00` and `00 N V`. */
const RLE_ESCAPE = 0x00;
/** A run is cut at 256 bytes: its count (length - 1) must fit in the N byte. */
const RLE_MAX_COUNT = 255;

/**
 * Appends the encoding of a run (`count` + 1 copies of `value`) at `w`;
 * returns the new write offset, or -1 when that would pass `limit`.
 */
function emitRun(dst: Uint8Array, w: number, limit: number, value: number, count: number): number {
  if (count >= 2) {
    if (w + 3 > limit) return -1;
    dst[w] = RLE_ESCAPE;
    dst[w + 1] = count;
    dst[w + 2] = value;
    return w + 3;
  }
  if (value === 0) {
    // A zero is always escaped: one as `00 00`, two as `00 01 00`.
    if (count === 0) {
      if (w + 2 > limit) return -1;
      dst[w] = RLE_ESCAPE;
      dst[w + 1] = 0;
      return w + 2;
    }
    if (w + 3 > limit) return -1;
    dst[w] = RLE_ESCAPE;
    dst[w + 1] = 1;
    dst[w + 2] = 0;
    return w + 3;
  }
  // One or two non-zero bytes are cheaper as literals than as a run.
  if (w + count + 1 > limit) return -1;
  dst[w] = value;
  if (count === 1) dst[w + 1] = value;
  return w + count + 1;
}

/**
 * RLE-encodes `src` into `dst`, which must hold at least `src.length - 1`
 * bytes. Returns the encoded length, or 0 when the encoding would not be
 * strictly smaller than `src` (the kernel returns `oldsize` for that; either
 * way the page is stored raw).
 */
export function rleCompress(src: Uint8Array, dst: Uint8Array): number {
  const n = src.length;
  // Output of a non-empty input is at least one byte, so n <= 1 never shrinks.
  if (n <= 1) return 0;
  const limit = n - 1;
  if (dst.length < limit) {
    throw new InternalError(`RLE output buffer holds ${dst.length} bytes, encoding ${n} bytes needs ${limit}`);
  }
  let w = 0;
  let r = 0;
  while (r < n) {
    // The run starting at r: up to RLE_MAX_COUNT + 1 bytes equal to src[r].
    const value = src[r];
    const stop = Math.min(n, r + RLE_MAX_COUNT + 1);
    let end = r + 1;
    while (end < stop && src[end] === value) end++;
    const count = end - r - 1;
    r = end;
    if (count === 0 && value !== 0) {
      // A lone non-zero byte, by far the most common case: a literal.
      if (w >= limit) return 0;
      dst[w++] = value;
      continue;
    }
    w = emitRun(dst, w, limit, value, count);
    if (w < 0) return 0;
  }
  return w;
}

/**
 * How many copies `00 N V` (N >= 1) stands for: 'kernel' N + 1, as K-V9
 * drivers/dump/dump_rle.c writes and crash's lkcd_uncompress_RLE reads it;
 * 'libkdumpfile' N, as libkdumpfile's uncompress_rle and its test encoder
 * (tests/rle.c) do. `00 00` is one zero byte in both.
 */
export type RleConvention = 'kernel' | 'libkdumpfile';
export const RLE_CONVENTIONS: readonly RleConvention[] = ['kernel', 'libkdumpfile'];

/** Copies of V beyond N in `00 N V`, by convention. */
function runExtra(convention: RleConvention): number {
  return convention === 'kernel' ? 1 : 0;
}

/**
 * The length `src` decodes to under `convention`, or -1 when it is
 * malformed (ends inside an escape) or would pass `cap` bytes. Reads
 * nothing but `src`: cheap enough to try both conventions on every page.
 */
export function rleDecodedLength(src: Uint8Array, convention: RleConvention, cap: number): number {
  const extra = runExtra(convention);
  const n = src.length;
  let r = 0;
  let w = 0;
  while (r < n) {
    if (src[r++] !== RLE_ESCAPE) {
      w++;
    } else {
      if (r >= n) return -1;
      const count = src[r++];
      if (count === 0) {
        w++;
      } else {
        if (r >= n) return -1;
        r++;
        w += count + extra;
      }
    }
    if (w > cap) return -1;
  }
  return w;
}

/**
 * Decodes RLE `src` into `dst` and returns the number of bytes produced.
 * Throws CorruptDumpError when `src` ends inside an escape or a run would
 * write past the end of `dst`.
 */
export function rleUncompress(src: Uint8Array, dst: Uint8Array, convention: RleConvention = 'kernel'): number {
  const extra = runExtra(convention);
  const n = src.length;
  const cap = dst.length;
  let r = 0;
  let w = 0;
  while (r < n) {
    const b = src[r++];
    if (b !== RLE_ESCAPE) {
      if (w >= cap) throw overflow(r - 1, w, 1, cap);
      dst[w++] = b;
      continue;
    }
    if (r >= n) {
      throw new CorruptDumpError(`RLE data ends inside an escape: 00 at byte ${r - 1} of ${n} has no count byte`);
    }
    const count = src[r++];
    if (count === 0) {
      if (w >= cap) throw overflow(r - 2, w, 1, cap);
      dst[w++] = 0;
      continue;
    }
    if (r >= n) {
      throw new CorruptDumpError(
        `RLE data ends inside an escape: 00 ${hex2(count)} at byte ${r - 2} of ${n} has no value byte`);
    }
    const value = src[r++];
    const len = count + extra;
    if (w + len > cap) throw overflow(r - 3, w, len, cap);
    dst.fill(value, w, w + len);
    w += len;
  }
  return w;
}

function hex2(x: number): string {
  return x.toString(16).padStart(2, '0');
}

function overflow(at: number, w: number, len: number, cap: number): CorruptDumpError {
  return new CorruptDumpError(
    `RLE data overflows the ${cap}-byte page: ${len} byte${len === 1 ? '' : 's'} from input byte ${at} ` +
    `would end at output byte ${w + len}`);
}
