/**
 * LZ4 pages: one LZ4 *block* per compressed page (lz4's
 * doc/lz4_Block_format.md), the page codec of the dump stage 1 keeps in
 * memory (DUMP_COMPRESS_LZ4, ours; see constants.ts).
 *
 * Compression is native only (the pagezip addon built with liblz4: its
 * batch with codec 'lz4', or lz4Compress for one page). Decoding has two
 * engines: the addon's lz4Decompress (liblz4's LZ4_decompress_safe) when it
 * is there, else lz4DecodeBlock below, written from the block format's
 * facts. Both refuse what the format calls corrupt with CorruptDumpError,
 * and neither reads or writes outside the buffers it is given.
 */
import { createRequire } from 'node:module';
import { CorruptDumpError, InternalError } from '../../codec/errors.js';
import type { BatchDeflaterHandle } from './gzip.js';

/** The shortest match: a match length field of 0 means 4 bytes. */
export const LZ4_MINMATCH = 4;
/** End of block: the last 5 bytes of a block are literals. */
export const LZ4_LASTLITERALS = 5;
/** End of block: the last match starts at least 12 bytes before the block's end. */
export const LZ4_MFLIMIT = 12;
/** A 4-bit length field of 15: more length bytes follow, each added, until one is not 255. */
const LZ4_RUN_MASK = 15;
const LZ4_ML_MASK = 15;
const LZ4_ML_BITS = 4;

// --- the addon's LZ4 --------------------------------------------------------------

interface AddonBatch {
  start(src: Uint8Array, count: number, dst: Uint8Array, sizes: Int32Array, crcs?: Uint32Array): void;
  wait(): void;
  close(): void;
}

/** The parts of src/native/pagezip/pagezip.c this module uses; the lz4 ones only with liblz4. */
interface PagezipLz4Addon {
  readonly BatchDeflater: new (level: number, threads: number, pageSize: number, zlibOnly?: boolean, codec?: 'deflate' | 'lz4') => AddonBatch;
  readonly lz4Compress?: (src: Uint8Array, dst: Uint8Array) => number;
  readonly lz4Decompress?: (src: Uint8Array, dst: Uint8Array) => number;
  readonly lz4Version?: string;
}

function loadLz4Addon(): PagezipLz4Addon | null {
  try {
    const addon = createRequire(import.meta.url)('lkcd-pagezip') as PagezipLz4Addon;
    return typeof addon.lz4Decompress === 'function' ? addon : null;
  } catch {
    // Not swallowed: gzip.ts keeps the load error (GZIP_ENGINE_LOAD_ERROR) for the same require.
    return null;
  }
}

const addon = loadLz4Addon();

/** Whether the pagezip addon loaded and was built with liblz4 (LZ4 compression is possible). */
export const PAGEZIP_LZ4: boolean = addon !== null;
/** liblz4's version (LZ4_versionString()) when PAGEZIP_LZ4, else null. */
export const PAGEZIP_LZ4_VERSION: string | null = addon?.lz4Version ?? null;

/**
 * A native batch compressor writing one LZ4 block per page, on `threads`
 * threads, with the contract of pagezipBatchDeflater (gzip.ts): sizes[i] is
 * the block's length or 0 (not strictly smaller: store the page raw),
 * crcs[i] the CRC32 of the stored bytes. Null when the addon or its liblz4
 * is missing. Its engine reads 'lz4 <version>'.
 */
export function pagezipBatchCompressor(codec: 'lz4', threads: number, pageSize: number): BatchDeflaterHandle | null {
  if (codec !== 'lz4') throw new InternalError(`pagezipBatchCompressor: unknown codec ${String(codec)}`);
  if (!addon) return null;
  // Level 1 is only validated: LZ4 has none here (acceleration 1, LZ4_compress_default's).
  let b: AddonBatch | null = new addon.BatchDeflater(1, threads, pageSize, false, 'lz4');
  const live = (): AddonBatch => {
    if (!b) throw new InternalError('lz4 batch compressor used after close()');
    return b;
  };
  return {
    engine: `lz4 ${addon.lz4Version ?? 'unknown'}`,
    start: (src, count, dst, sizes, crcs) => live().start(src, count, dst, sizes, crcs),
    wait() {
      try {
        live().wait();
      } catch (err) {
        throw new InternalError(`lz4 batch compress: ${err instanceof Error ? err.message : String(err)}`, {}, { cause: err });
      }
    },
    close() {
      b?.close();
      b = null;
    },
  };
}

/**
 * Compresses `src` into one LZ4 block in `dst` (at least `src.length - 1`
 * bytes): its length, or 0 when it would not be strictly smaller than
 * `src`. Needs PAGEZIP_LZ4.
 */
export function lz4CompressPage(src: Uint8Array, dst: Uint8Array): number {
  if (!addon?.lz4Compress) throw new InternalError('lz4 page codec needs the pagezip addon built with liblz4');
  if (src.length > 0 && dst.length < src.length - 1) {
    throw new InternalError(`lz4 output buffer holds ${dst.length} bytes, compressing ${src.length} bytes needs ${src.length - 1}`);
  }
  return addon.lz4Compress(src, dst);
}

/**
 * Decodes the LZ4 block `src` into `dst` (its capacity) and returns the
 * bytes produced: the addon's LZ4_decompress_safe when PAGEZIP_LZ4, else
 * lz4DecodeBlock. Throws CorruptDumpError for a block either refuses.
 */
export function lz4DecodePage(src: Uint8Array, dst: Uint8Array): number {
  if (!addon?.lz4Decompress) return lz4DecodeBlock(src, dst);
  try {
    return addon.lz4Decompress(src, dst);
  } catch (err) {
    if ((err as { code?: unknown } | null)?.code === 'ERR_LZ4_CORRUPT') {
      throw new CorruptDumpError((err as Error).message, {}, { cause: err });
    }
    throw new InternalError(`lz4 decompress: ${err instanceof Error ? err.message : String(err)}`, {}, { cause: err });
  }
}

// --- the block decoder, from the format ----------------------------------------------

function corrupt(message: string): CorruptDumpError {
  return new CorruptDumpError(`corrupt LZ4 block: ${message}`);
}

/**
 * The length bytes that follow a 4-bit field of 15, from input byte `ip`:
 * each is added, until one is not 255. Their sum, and the input byte after
 * them; `what` names the field when the input ends first.
 */
function lengthBytes(src: Uint8Array, ip: number, what: string): { sum: number; next: number } {
  let sum = 0;
  let b: number;
  do {
    if (ip >= src.length) throw corrupt(`truncated input: ${what} runs past the end (${src.length} bytes)`);
    b = src[ip++];
    sum += b;
  } while (b === 255);
  return { sum, next: ip };
}

/**
 * Decodes one LZ4 block into `dst` and returns the bytes produced. A block
 * is a run of sequences: a token (high nibble the literal length, low
 * nibble the match length - 4; 15 in either means length bytes follow, each
 * added, until one is not 255), the literals, then a 2-byte little-endian
 * offset back into the output (0 is invalid) and the match, copied a byte
 * at a time so that it may overlap what it produces. The last sequence is
 * literals only and ends the block exactly at the end of `src`.
 *
 * The end-of-block conditions (the last 5 bytes are literals, the last
 * match starts at least 12 bytes before the end; the format lets a decoder
 * refuse a block that breaks them) are checked as LZ4_decompress_safe
 * checks them: against the end of `dst`, the page a block must fill, and
 * on the input side (a match must leave room for a token and the last
 * literals after it).
 * So what liblz4 refuses, this decoder refuses too, and where both decode
 * they give the same bytes; liblz4's fast paths skip some of these checks
 * (a short sequence far from the ends), so a few blocks that break an
 * end-of-block condition pass there and are refused here.
 * Every read is checked against `src` and every write against `dst`;
 * nothing is sized from the block. Throws CorruptDumpError naming the
 * input byte where the block went wrong.
 */
export function lz4DecodeBlock(src: Uint8Array, dst: Uint8Array): number {
  const iend = src.length;
  const oend = dst.length;
  let ip = 0;
  let op = 0;
  if (iend === 0) throw corrupt('empty input: even an empty block is one token byte');
  for (;;) {
    if (ip >= iend) {
      throw corrupt(`truncated input: the block ends after a match at input byte ${iend}; the last sequence must be literals`);
    }
    const tokenAt = ip;
    const token = src[ip++];
    let literals = token >>> LZ4_ML_BITS;
    if (literals === LZ4_RUN_MASK) {
      const more = lengthBytes(src, ip, `the literal length of the sequence at input byte ${tokenAt}`);
      literals += more.sum;
      ip = more.next;
    }
    if (literals > iend - ip) {
      throw corrupt(`truncated input: ${literals} literals at input byte ${ip} overrun the input (${iend - ip} bytes left)`);
    }
    if (literals > oend - op) {
      throw corrupt(`output overrun: ${literals} literals at input byte ${ip} overrun the output (${oend - op} of ${oend} bytes left)`);
    }
    dst.set(src.subarray(ip, ip + literals), op);
    ip += literals;
    op += literals;
    if (ip === iend) break; // the last sequence: literals only
    if (iend - ip < 2) {
      throw corrupt(`truncated input: the match offset at input byte ${ip} runs past the end (${iend} bytes)`);
    }
    // A match, then at least a token and the last 5 literals: 2 + 1 + 5 bytes.
    if (iend - ip < 2 + 1 + LZ4_LASTLITERALS) {
      throw corrupt(`end of block: ${iend - ip} input bytes after the literals at input byte ${ip - literals} are too few for a match and the last ${LZ4_LASTLITERALS} literals`);
    }
    if (op > oend - LZ4_MFLIMIT) {
      throw corrupt(`end of block: a match at output byte ${op} starts less than ${LZ4_MFLIMIT} bytes before the end of the output (${oend} bytes)`);
    }
    const offsetAt = ip;
    const offset = src[ip] | (src[ip + 1] << 8);
    ip += 2;
    if (offset === 0) throw corrupt(`match offset 0 at input byte ${offsetAt}`);
    if (offset > op) {
      throw corrupt(`match offset ${offset} at input byte ${offsetAt} reaches before the start of the output (at output byte ${op})`);
    }
    let length = token & LZ4_ML_MASK;
    if (length === LZ4_ML_MASK) {
      const more = lengthBytes(src, ip, `the match length of the sequence at input byte ${tokenAt}`);
      length += more.sum;
      ip = more.next;
      // liblz4 1.9.4's bound on the input side (read_variable_length's limit, iend - LASTLITERALS + 1).
      if (iend - ip < LZ4_LASTLITERALS - 1) {
        throw corrupt(`end of block: ${iend - ip} input bytes after the match length at input byte ${ip} are too few for the last literals`);
      }
    }
    length += LZ4_MINMATCH;
    if (length > oend - op) {
      throw corrupt(`output overrun: a ${length}-byte match for input byte ${tokenAt} overruns the output (${oend - op} of ${oend} bytes left)`);
    }
    if (length > oend - LZ4_LASTLITERALS - op) {
      throw corrupt(`end of block: a ${length}-byte match at output byte ${op} ends inside the last ${LZ4_LASTLITERALS} bytes of the output (${oend} bytes), which must be literals`);
    }
    // Byte by byte: with offset < length the match repeats what it has just written.
    for (let from = op - offset, end = op + length; op < end;) dst[op++] = dst[from++];
  }
  return op;
}
