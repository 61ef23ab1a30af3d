/**
 * Plain records the index stores. The caller (`lkcd save`) derives them from
 * a dump; nothing in src/store reads a dump file. Field names are the
 * attribute names used elsewhere, so `lkcd info` and the index speak one
 * vocabulary.
 */

/** One row per saved dump, DUMPDIR/N. */
export interface DumpRecord {
  /** The dump number N (directory DUMPDIR/N). */
  n: number;
  /** Absolute path of DUMPDIR/N. */
  dir: string;
  /** dh_time.tv_sec */
  time_sec: number;
  /** dh_time.tv_usec */
  time_usec: number;
  host: string;
  release: string;
  version: string;
  machine: string;
  panic_string: string;
  /** dh_dump_level mask. */
  level: number;
  /** 0 none, 1 RLE, 2 GZIP. */
  compress: number;
  /** dh_dump_flags. */
  flags: number;
  /** Page records in dump.N. */
  pages: number;
  pages_compressed: number;
  /** pages * page size. */
  raw_bytes: number;
  /** Size of dump.N. */
  stored_bytes: number;
  /** False when the dump is truncated. */
  complete: boolean;
  missing_pages: number;
  /** Lower-case hex sha256 of dump.N. */
  sha256: string;
  /** Panic signature, from panicSignature(). */
  signature: string;
  /** Human-readable signature, from panicSignature(). */
  signature_text: string;
  /** Epoch seconds when `lkcd save` indexed the dump. */
  saved_at: number;
}

/** Where one page record lives in dump.N. */
export interface PageRow {
  pfn: bigint;
  /** File offset of the dump_page header in dump.N. */
  offset: bigint;
  /** dp_size */
  size: number;
  /** dp_flags */
  flags: number;
  /** CRC32 of the record's data (dp_size bytes after its header); null when unknown (indexed before schema 3). */
  crc32?: number | null;
}

/** One printk record of the crashed kernel. */
export interface LogLine {
  seq: number;
  ts_nsec: bigint;
  level: number;
  text: string;
}

/** Frames the dump level selected but the dump lacks: [start_pfn, end_pfn). */
export interface MissingRange {
  start_pfn: bigint;
  end_pfn: bigint;
}

/** One searchLog() hit. */
export interface LogHit {
  n: number;
  seq: number;
  ts_nsec: bigint;
  text: string;
}

/** Dumps that share a panic signature, lowest n first. */
export interface SignatureGroup {
  signature: string;
  signature_text: string;
  dumps: number[];
}
