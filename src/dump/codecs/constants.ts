/**
 * Compression ids and page-record flags of an LKCD dump, named as the
 * kernel's include/linux/dump.h (K-V8/K-V9) and crash's lkcd_dump_v8.h
 * name them.
 */

/** dh_dump_compress: the one algorithm every compressed page of the dump uses. */
export const DUMP_COMPRESS_NONE = 0 as const;
export const DUMP_COMPRESS_RLE = 1 as const;
export const DUMP_COMPRESS_GZIP = 2 as const;
export type DumpCompress = typeof DUMP_COMPRESS_NONE | typeof DUMP_COMPRESS_RLE | typeof DUMP_COMPRESS_GZIP;

/** Lower-case names for messages and the `dump.compression` attribute. */
export const DUMP_COMPRESS_NAMES: { readonly [K in DumpCompress]: string } = {
  [DUMP_COMPRESS_NONE]: 'none',
  [DUMP_COMPRESS_RLE]: 'rle',
  [DUMP_COMPRESS_GZIP]: 'gzip',
};

export function isDumpCompress(value: number): value is DumpCompress {
  return value === DUMP_COMPRESS_NONE || value === DUMP_COMPRESS_RLE || value === DUMP_COMPRESS_GZIP;
}

/** dp_flags bits of struct __dump_page. */
export const DUMP_DH_RAW = 0x1 as const;
export const DUMP_DH_COMPRESSED = 0x2 as const;
export const DUMP_DH_END = 0x4 as const;
