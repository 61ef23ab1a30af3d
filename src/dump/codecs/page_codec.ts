/**
 * The per-page compression rule of an LKCD dump, both ways.
 *
 * Writing (K-V8/K-V9 dump_fmt.c: dump_lcrash_add_data): the page is
 * compressed into a scratch buffer; when the result is non-zero and strictly
 * smaller than the page it is stored with DUMP_DH_COMPRESSED and dp_size =
 * its length, otherwise the page is stored as is with DUMP_DH_RAW and
 * dp_size = the page size.
 *
 * Reading (crash lkcd_common.c: cache_page): COMPRESSED in a dump whose
 * dh_dump_compress is NONE is an error; RLE and GZIP pages (and LZ4 pages,
 * ours, in stage 1's in-memory dump) must decompress to exactly one page; a RAW page is a copy when dp_size is the page size
 * and a zero page when dp_size is 0, and any other RAW dp_size is an error.
 */
import { CorruptDumpError, DumpError, InternalError } from '../../codec/errors.js';
import {
  DUMP_COMPRESS_GZIP, DUMP_COMPRESS_LZ4, DUMP_COMPRESS_NAMES, DUMP_COMPRESS_NONE, DUMP_COMPRESS_RLE, DUMP_DH_COMPRESSED,
  DUMP_DH_END, DUMP_DH_RAW, isDumpCompress, type DumpCompress,
} from './constants.js';
import {
  checkGzipLevel, openPageDeflater, openPageInflater, type GzipEngine, type PageDeflater, type PageInflater,
} from './gzip.js';
import { lz4CompressPage, lz4DecodePage, PAGEZIP_LZ4 } from './lz4.js';
import { rleCompress, rleUncompress, type RleConvention } from './rle.js';

/**
 * The deflate level of a GZIP dump when none is configured. LKCD compresses
 * at panic time, on a machine that is going down, so speed matters more
 * than the last few percent of ratio: K-V8/K-V9 dump_gzip.c starts
 * dump_compress_level at 1 (Z_BEST_SPEED) for the same reason.
 */
export const DUMP_GZIP_DEFAULT_LEVEL = 1;

/** One page as it goes into the dump: a dump_page header's dp_flags and dp_size, and the bytes that follow it. */
export interface EncodedPage {
  /** DUMP_DH_COMPRESSED or DUMP_DH_RAW. */
  readonly flags: number;
  /** dp_size: `data.length`. */
  readonly size: number;
  /** A view of the caller's scratch buffer (compressed) or the page itself (raw); valid until the next encode. */
  readonly data: Uint8Array;
}

export interface PageCodec {
  /** dh_dump_compress of the dump this codec writes and reads. */
  readonly compress: DumpCompress;
  /**
   * Applies the per-page rule to `page`. `scratch` receives compressed bytes
   * and must hold at least `page.length - 1` bytes.
   */
  encode(page: Uint8Array, scratch: Uint8Array): EncodedPage;
  /** decodePage with this codec's compression and its own reusable inflater. */
  decode(flags: number, data: Uint8Array, out: Uint8Array): Uint8Array;
  /** Frees the codec's zlib streams, if any. */
  close(): void;
}

export interface PageCodecOptions {
  /** GZIP deflate level, 0..9; default DUMP_GZIP_DEFAULT_LEVEL. Ignored by NONE, RLE and LZ4. */
  readonly level?: number;
  /** GZIP engine; default the addon when it loaded (see gzip.ts). */
  readonly engine?: GzipEngine;
  /** How RLE runs are read (rle.ts); default the kernel's. Writing is always the kernel's. */
  readonly rle?: RleConvention;
}

function raw(page: Uint8Array): EncodedPage {
  return { flags: DUMP_DH_RAW, size: page.length, data: page };
}

/** The per-page rule around a compressor that returns 0 for "did not shrink". */
function ruled(page: Uint8Array, scratch: Uint8Array, size: number): EncodedPage {
  return size > 0 && size < page.length
    ? { flags: DUMP_DH_COMPRESSED, size, data: scratch.subarray(0, size) }
    : raw(page);
}

/** A page codec for dumps compressed with `compress`; close() it when done. */
export function makePageCodec(compress: DumpCompress, opts: PageCodecOptions = {}): PageCodec {
  switch (compress) {
    case DUMP_COMPRESS_NONE:
      return {
        compress,
        encode: (page) => raw(page),
        decode: (flags, data, out) => decodePage(flags, data, compress, out),
        close() {},
      };
    case DUMP_COMPRESS_RLE: {
      const rle = opts.rle ?? 'kernel';
      return {
        compress,
        encode: (page, scratch) => ruled(page, scratch, rleCompress(page, scratch)),
        decode: (flags, data, out) => decodePage(flags, data, compress, out, undefined, rle),
        close() {},
      };
    }
    case DUMP_COMPRESS_GZIP: {
      const level = opts.level ?? DUMP_GZIP_DEFAULT_LEVEL;
      // Opened on first use: a reader never deflates, a writer rarely inflates.
      let deflater: PageDeflater | null = null;
      let inflater: PageInflater | null = null;
      let closed = false;
      const live = (): void => {
        if (closed) throw new InternalError('gzip page codec used after close()');
      };
      // A bad level fails here, not at the first page.
      checkGzipLevel(level);
      return {
        compress,
        encode(page, scratch) {
          live();
          deflater ??= openPageDeflater(level, opts.engine);
          return ruled(page, scratch, deflater.deflate(page, scratch));
        },
        decode(flags, data, out) {
          live();
          inflater ??= openPageInflater(opts.engine);
          return decodePage(flags, data, compress, out, inflater);
        },
        close() {
          deflater?.close();
          inflater?.close();
          deflater = null;
          inflater = null;
          closed = true;
        },
      };
    }
    case DUMP_COMPRESS_LZ4:
      return {
        compress,
        encode(page, scratch) {
          // Checked per call, not at creation: a reader of an LZ4 dump needs no liblz4.
          if (!PAGEZIP_LZ4) throw new InternalError('lz4 page codec needs the pagezip addon built with liblz4');
          return ruled(page, scratch, lz4CompressPage(page, scratch));
        },
        decode: (flags, data, out) => decodePage(flags, data, compress, out),
        close() {},
      };
    default:
      throw unsupported(compress);
  }
}

function unsupported(compress: number): DumpError {
  return new DumpError('UNSUPPORTED', `unknown dump compression ${compress} (dh_dump_compress)`,
    { struct: 'dump_header', field: 'dh_dump_compress' });
}

/**
 * Reads one page record into `out`, whose length is the page size, and
 * returns `out`. `data` is the dp_size bytes after the dump_page header.
 * GZIP pages are inflated with `inflater` when given (readers of many pages
 * should pass one, or use PageCodec.decode), else with a stream opened and
 * closed for this page. RLE runs are read with `rle` (default the kernel's
 * convention). Throws CorruptDumpError for a record the rule above rejects.
 */
export function decodePage(
  flags: number, data: Uint8Array, compress: DumpCompress, out: Uint8Array, inflater?: PageInflater, rle: RleConvention = 'kernel',
): Uint8Array {
  const pageSize = out.length;
  if (!isDumpCompress(compress)) throw unsupported(compress);
  if (flags & DUMP_DH_END) {
    throw new CorruptDumpError(`dp_flags 0x${flags.toString(16)}: the end marker is not a page`,
      { struct: 'dump_page', field: 'dp_flags' });
  }
  if (flags & DUMP_DH_COMPRESSED) {
    if (compress === DUMP_COMPRESS_NONE) {
      throw new CorruptDumpError(
        `page is DUMP_DH_COMPRESSED but the dump's compression is ${DUMP_COMPRESS_NAMES[compress]}`,
        { struct: 'dump_page', field: 'dp_flags' });
    }
    if (data.length > pageSize) {
      throw new CorruptDumpError(`compressed dp_size ${data.length} exceeds page size ${pageSize}`,
        { struct: 'dump_page', field: 'dp_size' });
    }
    const name = DUMP_COMPRESS_NAMES[compress];
    let produced: number;
    try {
      if (compress === DUMP_COMPRESS_RLE) {
        produced = rleUncompress(data, out, rle);
      } else if (compress === DUMP_COMPRESS_LZ4) {
        produced = lz4DecodePage(data, out);
      } else if (inflater) {
        produced = inflater.inflate(data, out);
      } else {
        const once = openPageInflater();
        try {
          produced = once.inflate(data, out);
        } finally {
          once.close();
        }
      }
    } catch (err) {
      if (err instanceof CorruptDumpError) {
        throw new CorruptDumpError(`${name} page does not decompress: ${err.message}`,
          { struct: 'dump_page', field: 'dp_size' }, { cause: err });
      }
      throw err;
    }
    if (produced !== pageSize) {
      throw new CorruptDumpError(
        `${name} page decompresses to ${produced} bytes, expected the page size ${pageSize}`,
        { struct: 'dump_page', field: 'dp_size' });
    }
    return out;
  }
  if (flags & DUMP_DH_RAW) {
    if (data.length === 0) {
      out.fill(0);
      return out;
    }
    if (data.length === pageSize) {
      out.set(data);
      return out;
    }
    throw new CorruptDumpError(`invalid DUMP_DH_RAW dp_size ${data.length}: must be 0 or the page size ${pageSize}`,
      { struct: 'dump_page', field: 'dp_size' });
  }
  throw new CorruptDumpError(
    `dp_flags 0x${flags.toString(16)} has neither DUMP_DH_RAW nor DUMP_DH_COMPRESSED`,
    { struct: 'dump_page', field: 'dp_flags' });
}
