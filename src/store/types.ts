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
  /** dh_dump_compress: 0 none, 1 RLE, 2 GZIP (LKCD); 0 for other formats (see `compression`). */
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
  /** True exactly when state is 'complete'. */
  complete: boolean;
  /** Pages listed missing (every reason but the dumper's own frames). */
  missing_pages: number;
  /** complete, truncated (pages missing, each listed) or damaged (pages or headers fail their checks). */
  state: DumpState;
  /** verified (checksums cover everything and match), failed, or unverified (no checksums in the dump). */
  checksum: ChecksumStatus;
  /** Pages present in dump.N that fail a check; they read as not present. */
  damaged_pages: number;
  /** dh_memory_size: frames of RAM the crashed machine had (0 when the dump does not say). */
  memory_pages: number;
  /** Frames the dumper held at the crash (listed, not missing). */
  dumper_pages: number;
  /** Frames the dump level did not select, counted from the dump's own mem_map; null when it could not be read. */
  not_selected_pages: number | null;
  /** Lower-case hex sha256 of dump.N. */
  sha256: string;
  /** Panic signature, from panicSignature(). */
  signature: string;
  /** Human-readable signature, from panicSignature(). */
  signature_text: string;
  /** Epoch seconds when `lkcd save` indexed the dump. */
  saved_at: number;
  /**
   * The earlier dump this one is byte-identical to (the lowest n with the
   * same sha256: another crash with the same memory, or a device restored
   * from a copy), or null. Derived by the index when a row is read; never
   * stored, and ignored by addDump.
   */
  same_as?: number | null;
  /** Which design produced the dump: lkcd-softboot (lkcd save), kdump (kdumpctl save), fadump, import (lkcd import). */
  design: DumpDesign;
  /** file.format: lkcd, diskdump (makedumpfile's kdump-compressed format), elf. */
  format: DumpFileFormat;
  /**
   * Where the dump file is, relative to `dir` (DUMPDIR/N): `dump.N` for what lkcd save and lkcd
   * import copied there; for kdump, the vmcore kdumpctl save wrote under the machine's /var/crash,
   * which is not copied (e.g. `../../../var/crash/127.0.0.1-<date>/vmcore`).
   */
  file: string;
  /** dump.compression by name: none, rle, gzip (LKCD); zlib, lzo, snappy, zstd (kdump-compressed). */
  compression: string;
  /** How an RLE LKCD dump's runs read (kernel: 00 N V = N+1 copies; libkdumpfile: N); null for others. */
  rle_convention: 'kernel' | 'libkdumpfile' | null;
  /** The file an imported dump was copied from; '' for the other designs. */
  source: string;
  /** Why the crashed kernel's log could not be read from the dump; '' when it was read. */
  log_error: string;
  /** What the reader said of the dump that is not a failure (cut short, the RLE convention, ...), one per line. */
  notes: string;
}

/** Designs a dump row can come from (DESIGN section 7). */
export const DUMP_DESIGNS = ['lkcd-softboot', 'kdump', 'fadump', 'import'] as const;
export type DumpDesign = (typeof DUMP_DESIGNS)[number];

/** File formats of an indexed dump, under libkdumpfile's names (file.format). */
export const DUMP_FILE_FORMATS = ['lkcd', 'diskdump', 'elf'] as const;
export type DumpFileFormat = (typeof DUMP_FILE_FORMATS)[number];

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

/** complete, truncated or damaged: see DumpRecord.state. */
export type DumpState = 'complete' | 'truncated' | 'damaged';
export const DUMP_STATES: readonly DumpState[] = ['complete', 'truncated', 'damaged'];

export type ChecksumStatus = 'verified' | 'failed' | 'unverified';
export const CHECKSUM_STATUSES: readonly ChecksumStatus[] = ['verified', 'failed', 'unverified'];

/**
 * Why a range is listed: the dump's own reasons (did-not-fit, pass-dropped,
 * damaged-in-memory, device, unspecified), 'dumper' for the dumper's own
 * frames (not missing), and 'damaged' for pages dump.N holds but that fail
 * their checks.
 */
export const RANGE_REASONS = ['unspecified', 'did-not-fit', 'pass-dropped', 'damaged-in-memory', 'device', 'dumper', 'damaged'] as const;
export type RangeReason = (typeof RANGE_REASONS)[number];

/** Frames listed beside a dump: [start_pfn, end_pfn) and why. */
export interface MissingRange {
  start_pfn: bigint;
  end_pfn: bigint;
  /** 'unspecified' when not given (rows indexed before schema 4). */
  reason?: RangeReason;
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
