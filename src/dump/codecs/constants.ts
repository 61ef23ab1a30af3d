/**
 * Compression ids and page-record flags of an LKCD dump, named as the
 * kernel's include/linux/dump.h (K-V8/K-V9) and crash's lkcd_dump_v8.h
 * name them.
 */

/** dh_dump_compress: the one algorithm every compressed page of the dump uses. */
export const DUMP_COMPRESS_NONE = 0 as const;
export const DUMP_COMPRESS_RLE = 1 as const;
export const DUMP_COMPRESS_GZIP = 2 as const;
/**
 * Ours, not an LKCD value (ASCII "LZ4"): one LZ4 block per compressed page
 * (lz4's doc/lz4_Block_format.md), decoded into a page-sized buffer. Only
 * ever in the dump stage 1 keeps in memory; the writeout transcodes its
 * pages to GZIP, so no dump file on the device or in DUMPDIR carries it
 * and crash or libkdumpfile never see it.
 */
export const DUMP_COMPRESS_LZ4 = 0x4c5a34 as const;
export type DumpCompress =
  typeof DUMP_COMPRESS_NONE | typeof DUMP_COMPRESS_RLE | typeof DUMP_COMPRESS_GZIP | typeof DUMP_COMPRESS_LZ4;

/** Lower-case names for messages and the `dump.compression` attribute. */
export const DUMP_COMPRESS_NAMES: { readonly [K in DumpCompress]: string } = {
  [DUMP_COMPRESS_NONE]: 'none',
  [DUMP_COMPRESS_RLE]: 'rle',
  [DUMP_COMPRESS_GZIP]: 'gzip',
  [DUMP_COMPRESS_LZ4]: 'lz4',
};

export function isDumpCompress(value: number): value is DumpCompress {
  return value === DUMP_COMPRESS_NONE || value === DUMP_COMPRESS_RLE || value === DUMP_COMPRESS_GZIP ||
    value === DUMP_COMPRESS_LZ4;
}

/** dp_flags bits of struct __dump_page. */
export const DUMP_DH_RAW = 0x1 as const;
export const DUMP_DH_COMPRESSED = 0x2 as const;
export const DUMP_DH_END = 0x4 as const;
