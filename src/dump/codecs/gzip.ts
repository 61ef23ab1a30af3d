/**
 * The LKCD "gzip" page compression (dh_dump_compress == DUMP_COMPRESS_GZIP).
 *
 * Despite the name, a page is a zlib stream (RFC 1950), not a .gz file: the
 * kernel's dump_gzip.c runs zlib_deflateInit(level) + zlib_deflate(Z_FINISH)
 * per page, and crash and s390 dfi_lkcd.c read it with uncompress().
 *
 * Two engines do the work:
 * - 'lkcd-pagezip', the N-API addon in src/native/pagezip, built at install
 *   time against Node's own zlib. It keeps one z_stream per deflater or
 *   inflater and resets it between pages, and stops deflating as soon as
 *   the output reaches the page size.
 * - 'node:zlib', used only when the addon did not load: deflateSync and
 *   inflateSync, which set up and tear down a stream for every page.
 * Both use the same zlib with the same parameters, so they produce the same
 * bytes.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import * as zlib from 'node:zlib';
import { CorruptDumpError, InternalError, UsageError } from '../../codec/errors.js';

export type GzipEngine = 'lkcd-pagezip' | 'node:zlib';

/** zlib's levels: 0 stores, 1 is fastest, 9 compresses best. */
export const GZIP_LEVEL_MIN = 0;
export const GZIP_LEVEL_MAX = 9;

/** Compresses single pages into zlib streams; one stream is reused for every page. */
export interface PageDeflater {
  readonly engine: GzipEngine;
  readonly level: number;
  /**
   * Deflates `src` into `dst`, which must hold at least `src.length - 1`
   * bytes. Returns the stream's length, or 0 when it would not be strictly
   * smaller than `src` (the page is then stored raw).
   */
  deflate(src: Uint8Array, dst: Uint8Array): number;
  /** Frees the stream; the deflater is unusable afterwards. */
  close(): void;
}

/** Decompresses single zlib streams; one stream is reused for every page. */
export interface PageInflater {
  readonly engine: GzipEngine;
  /**
   * Inflates `src`, which must be exactly one zlib stream, into `dst`;
   * returns the number of bytes produced. Throws CorruptDumpError for a
   * corrupt, truncated or trailing-data stream, or one that inflates to
   * more than `dst.length` bytes.
   */
  inflate(src: Uint8Array, dst: Uint8Array): number;
  /** Frees the stream; the inflater is unusable afterwards. */
  close(): void;
}

// --- the addon ------------------------------------------------------------------

interface AddonDeflater {
  deflate(src: Uint8Array, dst: Uint8Array): number;
  close(): void;
}

interface AddonInflater {
  inflate(src: Uint8Array, dst: Uint8Array): number;
  close(): void;
}

interface AddonBatchDeflater {
  start(src: Uint8Array, count: number, dst: Uint8Array, sizes: Int32Array, crcs?: Uint32Array, lengths?: Int32Array): void;
  wait(): void;
  close(): void;
}

interface AddonBatchInflater {
  start(src: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, dst: Uint8Array, results: Int32Array): void;
  wait(): void;
  close(): void;
}

/** What src/native/pagezip/pagezip.c exports. */
interface PagezipAddon {
  /** zlibOnly: deflate with zlib even when libdeflate is built in. */
  readonly Deflater: new (level: number, zlibOnly?: boolean) => AddonDeflater;
  readonly Inflater: new () => AddonInflater;
  readonly BatchDeflater: new (level: number, threads: number, pageSize: number, zlibOnly?: boolean) => AddonBatchDeflater;
  readonly BatchInflater: new (threads: number, pageSize: number) => AddonBatchInflater;
  readonly crc32: (buf: Uint8Array, crc?: number) => number;
  readonly crc32Split: (buf: Uint8Array, split: number, out: Uint32Array) => void;
  readonly zlibVersion: string;
  /** What deflates: "libdeflate" when the addon was built with it, else "zlib". */
  readonly engine: 'libdeflate' | 'zlib';
}

/**
 * Pages compressed on native threads, many per call, while JavaScript goes
 * on (stage 1's batches): start() returns at once, wait() joins. sizes[i]
 * is the zlib stream's length, 0 for "not strictly smaller" (store the page
 * raw); crcs[i], when asked for, the CRC32 of the bytes stored for the page
 * (the stream, or the page when raw). The buffers belong to the batch until
 * wait() returns.
 */
export interface BatchDeflaterHandle {
  /** "libdeflate" or "zlib": the compressor behind the addon. */
  readonly engine: string;
  /**
   * With `lengths` (the addon built with liblz4; deflate batches only): page
   * i of `src` holds an LZ4 block of lengths[i] bytes, or the page itself
   * when lengths[i] is the page size; it is decoded first, and what is
   * stored for it, stream or page, is in `dst` either way. A block that
   * does not decode to one page makes wait() throw CorruptDumpError.
   */
  start(src: Uint8Array, count: number, dst: Uint8Array, sizes: Int32Array, crcs?: Uint32Array, lengths?: Int32Array): void;
  wait(): void;
  close(): void;
}

/**
 * zlib streams inflated on native threads, many per call: start() returns
 * at once, wait() joins. results[i] is the bytes stream i gave (the caller
 * checks it is a whole page), or -1 when the stream was refused: inflate
 * that one alone with a PageInflater for zlib's own reason.
 */
export interface BatchInflaterHandle {
  start(src: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, dst: Uint8Array, results: Int32Array): void;
  wait(): void;
  close(): void;
}

function loadAddon(): { addon: PagezipAddon | null; error: Error | null } {
  try {
    return { addon: createRequire(import.meta.url)('lkcd-pagezip') as PagezipAddon, error: null };
  } catch (err) {
    // Not swallowed: kept in GZIP_ENGINE_LOAD_ERROR for whoever asks why
    // the fallback is in use. Nothing prints it.
    return { addon: null, error: err instanceof Error ? err : new Error(String(err)) };
  }
}

const loaded = loadAddon();

/** The engine used when none is asked for: the addon if it loaded, else node:zlib. */
export const GZIP_ENGINE: GzipEngine = loaded.addon ? 'lkcd-pagezip' : 'node:zlib';
/** Why the addon did not load, or null when it did. */
export const GZIP_ENGINE_LOAD_ERROR: Error | null = loaded.error;
/** The version of the zlib doing the work (the same library for both engines). */
export const GZIP_ZLIB_VERSION: string = loaded.addon?.zlibVersion ?? process.versions.zlib ?? 'unknown';

/** What deflates inside the addon ("libdeflate" or "zlib"), or null when it did not load. */
export const PAGEZIP_DEFLATE_ENGINE: string | null = loaded.addon?.engine ?? null;

/**
 * LKCD_DEFLATE=zlib: the addon deflates with zlib even when it was built with
 * libdeflate, as a build without libdeflate-dev does. The streams differ, the
 * pages they hold do not; a test proves that through libkdumpfile.
 */
function addonZlibOnly(): boolean {
  return process.env.LKCD_DEFLATE === 'zlib';
}

/**
 * A native batch deflater at `level` on `threads` threads, or null when the
 * addon did not load (the caller then compresses in JavaScript).
 */
export function pagezipBatchDeflater(level: number, threads: number, pageSize: number): BatchDeflaterHandle | null {
  checkGzipLevel(level);
  if (!loaded.addon) return null;
  const zlibOnly = addonZlibOnly();
  let b: AddonBatchDeflater | null = new loaded.addon.BatchDeflater(level, threads, pageSize, zlibOnly);
  const live = (): AddonBatchDeflater => {
    if (!b) throw new InternalError('gzip batch deflater used after close()');
    return b;
  };
  return {
    engine: zlibOnly ? 'zlib' : loaded.addon.engine,
    start: (src, count, dst, sizes, crcs, lengths) => live().start(src, count, dst, sizes, crcs, lengths),
    wait() {
      try {
        live().wait();
      } catch (err) {
        if ((err as { code?: unknown } | null)?.code === 'ERR_LZ4_CORRUPT') throw new CorruptDumpError((err as Error).message, {}, { cause: err });
        throw new InternalError(`gzip batch deflate: ${err instanceof Error ? err.message : String(err)}`, {}, { cause: err });
      }
    },
    close() {
      b?.close();
      b = null;
    },
  };
}

/** Threads for the native batches: every core this process may use, at most 16 (LKCD_SINGLE_THREAD=1: one). */
export function nativeThreads(): number {
  if (process.env.LKCD_SINGLE_THREAD === '1') return 1;
  return Math.max(1, Math.min(16, os.availableParallelism()));
}

/** A native batch inflater on `threads` threads, or null when the addon did not load. */
export function pagezipBatchInflater(threads: number, pageSize: number): BatchInflaterHandle | null {
  if (!loaded.addon) return null;
  let b: AddonBatchInflater | null = new loaded.addon.BatchInflater(threads, pageSize);
  const live = (): AddonBatchInflater => {
    if (!b) throw new InternalError('gzip batch inflater used after close()');
    return b;
  };
  return {
    start: (src, offsets, lengths, count, dst, results) => live().start(src, offsets, lengths, count, dst, results),
    wait: () => live().wait(),
    close() {
      b?.close();
      b = null;
    },
  };
}

/** CRC32 of `buf` (zlib's), continuing from `crc`: the addon's when it loaded, else node:zlib's. */
export const pageCrc32: (buf: Uint8Array, crc?: number) => number = loaded.addon
  ? loaded.addon.crc32
  : (buf, crc = 0) => zlib.crc32(buf, crc) >>> 0;

/**
 * CRC32s of a page record held contiguously (its header, then its data,
 * from `split` on): out[0] of the data alone, out[1] of the whole record.
 * One native call when the addon loaded.
 */
export const recordCrc32s: (rec: Uint8Array, split: number, out: Uint32Array) => void = loaded.addon
  ? loaded.addon.crc32Split
  : (rec, split, out) => {
    out[0] = zlib.crc32(rec.subarray(split)) >>> 0;
    out[1] = zlib.crc32(rec) >>> 0;
  };

/** The engines this process can use. */
export function gzipEngines(): GzipEngine[] {
  return loaded.addon ? ['lkcd-pagezip', 'node:zlib'] : ['node:zlib'];
}

function requireAddon(): PagezipAddon {
  if (!loaded.addon) {
    throw new InternalError(`the lkcd-pagezip addon was asked for but did not load: ${GZIP_ENGINE_LOAD_ERROR?.message}`);
  }
  return loaded.addon;
}

/** zlib return codes the addon and node:zlib name their errors with. */
const ZLIB_ERROR_CODES = new Set(['Z_DATA_ERROR', 'Z_BUF_ERROR', 'Z_NEED_DICT', 'Z_STREAM_ERROR']);

/** Corrupt input becomes CorruptDumpError; anything else is a bug (bad arguments, closed stream). */
function inflateError(err: unknown): Error {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string' && ZLIB_ERROR_CODES.has(code)) {
    return new CorruptDumpError(`gzip page: ${message.replace(/^zlib inflate: /, '')}`, {}, { cause: err });
  }
  return new InternalError(`gzip page inflate: ${message}`, {}, { cause: err });
}

/** Throws UsageError unless `level` is a zlib level, 0..9. */
export function checkGzipLevel(level: number): void {
  if (!Number.isInteger(level) || level < GZIP_LEVEL_MIN || level > GZIP_LEVEL_MAX) {
    throw new UsageError(`gzip compression level ${level} is not an integer in ${GZIP_LEVEL_MIN}..${GZIP_LEVEL_MAX}`);
  }
}

function checkDeflateOutput(src: Uint8Array, dst: Uint8Array): void {
  if (src.length > 0 && dst.length < src.length - 1) {
    throw new InternalError(`gzip output buffer holds ${dst.length} bytes, deflating ${src.length} bytes needs ${src.length - 1}`);
  }
}

// --- node:zlib fallback ------------------------------------------------------------

function nodeDeflate(level: number, src: Uint8Array, dst: Uint8Array): number {
  if (src.length === 0) return 0;
  const out = zlib.deflateSync(src, { level });
  if (out.length >= src.length) return 0;
  dst.set(out);
  return out.length;
}

function nodeInflate(src: Uint8Array, dst: Uint8Array): number {
  let result: { buffer: Buffer; engine: zlib.Inflate };
  try {
    // maxOutputLength bounds the allocation by the caller's page, never by the input.
    result = zlib.inflateSync(src, { maxOutputLength: Math.max(1, dst.length), info: true } as zlib.ZlibOptions) as
      unknown as { buffer: Buffer; engine: zlib.Inflate };
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (code === 'ERR_BUFFER_TOO_LARGE') {
      throw new CorruptDumpError(`gzip page: output overflow: the stream inflates to more than ${dst.length} bytes`,
        {}, { cause: err });
    }
    throw inflateError(err);
  }
  const { buffer, engine } = result;
  if (buffer.length > dst.length) {
    throw new CorruptDumpError(`gzip page: output overflow: the stream inflates to more than ${dst.length} bytes`);
  }
  if (engine.bytesWritten !== src.length) {
    throw new CorruptDumpError(
      `gzip page: trailing data: the zlib stream ends after ${engine.bytesWritten} of ${src.length} input bytes`);
  }
  dst.set(buffer);
  return buffer.length;
}

// --- opening and closing --------------------------------------------------------

/** Opens a deflater at `level` (0..9) on `engine` (default GZIP_ENGINE). */
export function openPageDeflater(level: number, engine: GzipEngine = GZIP_ENGINE): PageDeflater {
  checkGzipLevel(level);
  if (engine === 'lkcd-pagezip') {
    let z: AddonDeflater | null = new (requireAddon().Deflater)(level, addonZlibOnly());
    const live = (): AddonDeflater => {
      if (!z) throw new InternalError('gzip deflater used after close()');
      return z;
    };
    return {
      engine,
      level,
      deflate(src, dst) {
        checkDeflateOutput(src, dst);
        return live().deflate(src, dst);
      },
      close() {
        z?.close();
        z = null;
      },
    };
  }
  let open = true;
  const live = (): void => {
    if (!open) throw new InternalError('gzip deflater used after close()');
  };
  return {
    engine,
    level,
    deflate(src, dst) {
      live();
      checkDeflateOutput(src, dst);
      return nodeDeflate(level, src, dst);
    },
    close() {
      open = false;
    },
  };
}

/** Opens an inflater on `engine` (default GZIP_ENGINE). */
export function openPageInflater(engine: GzipEngine = GZIP_ENGINE): PageInflater {
  if (engine === 'lkcd-pagezip') {
    let z: AddonInflater | null = new (requireAddon().Inflater)();
    return {
      engine,
      inflate(src, dst) {
        if (!z) throw new InternalError('gzip inflater used after close()');
        try {
          return z.inflate(src, dst);
        } catch (err) {
          throw inflateError(err);
        }
      },
      close() {
        z?.close();
        z = null;
      },
    };
  }
  let open = true;
  return {
    engine,
    inflate(src, dst) {
      if (!open) throw new InternalError('gzip inflater used after close()');
      return nodeInflate(src, dst);
    },
    close() {
      open = false;
    },
  };
}
