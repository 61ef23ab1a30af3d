/**
 * The format table's vocabulary: a dump file handle, the ops every format
 * exports, what a successful probe returns, and the one attribute record
 * (libkdumpfile's dotted attribute names) that `lkcd info` prints and
 * src/store stores.
 */
import fs from 'node:fs';
import { DumpError, hex, ioError } from '../../codec/index.js';
import type { PtRegs } from '../../kernel/structs/pt_regs.js';
import type { DumpRangeReasonName } from '../lkcd/constants.js';
import type { RleConvention } from '../codecs/rle.js';

/**
 * Bytes a dump is read from: a file, the dump device from DUMP_HEADER_OFFSET
 * on, or the memdev stage 1 left in RAM. Offsets are relative to byte 0 of
 * the dump; `base` is where that byte lies in what `path` names (messages
 * give `base + offset`). `size` bounds every offset read from it.
 */
export interface DumpSource {
  /** What messages call it: a file or device path, or "memdev at 0x...". */
  readonly path: string;
  readonly size: bigint;
  /** Offset of the dump's byte 0 inside `path` (DUMP_HEADER_OFFSET on a device, else 0). */
  readonly base: bigint;
  /** Reads up to `out.length` bytes at `position`; returns how many there were (fewer only at the end). */
  readAt(out: Uint8Array, position: bigint): number;
  close(): void;
}

/** An open dump file: probes read it through the DumpSource methods. */
export type DumpFile = DumpSource;

/**
 * Names of the formats in the table (src/dump/formats/index.ts); 'diskdump'
 * (makedumpfile's kdump-compressed format) and 'elf' (an ELF vmcore) under
 * libkdumpfile's names for them.
 */
export type DumpFormatName = 'lkcd' | 'inplace' | 'diskdump' | 'elf';

/** `dump.compression`: dh_dump_compress by name, or the page codec of a kdump-compressed dump. */
export type DumpCompressionName = 'none' | 'rle' | 'gzip' | 'zlib' | 'lzo' | 'snappy' | 'zstd';

/**
 * Dump metadata under libkdumpfile's attribute names where it has one
 * (`file.format`, `file.description`, `arch.name`, `arch.page_size`,
 * `linux.uts.*`), plus our own `dump.*` and `crash.*` keys.
 */
export interface DumpAttributes {
  'file.format': DumpFormatName;
  /** e.g. "Linux Kernel Crash Dump v9", as libkdumpfile's lkcd_probe() words it. */
  'file.description': string;
  'arch.name': 'x86_64';
  'arch.page_size': number;
  'dump.compression': DumpCompressionName;
  /** dh_dump_level: the cumulative DUMP_MASK_* bits. */
  'dump.level': number;
  /** dh_dump_flags: DUMP_FLAGS_* bits. */
  'dump.flags': number;
  /** Page records in the dump (found by walking it, or dh_num_pages when an index replaced the walk). */
  'dump.pages': number;
  'crash.panic_string': string;
  /** dh_time.tv_sec: seconds since the epoch. */
  'crash.time': bigint;
  /** dh_time.tv_usec. */
  'crash.time_usec': bigint;
  'linux.uts.release': string;
  'linux.uts.nodename': string;
  'linux.uts.version': string;
  'linux.uts.machine': string;
  /** dh_current_task: address of the task_struct that dumped. */
  'crash.current_task': bigint;
  /** dha_regs: pt_regs of the dumping CPU. */
  'crash.regs': PtRegs;
  /** dh_memory_size: frames of RAM of the crashed machine (0 when not given). */
  'dump.memory_pages': bigint;
  /** File offset of the first page record. */
  'dump.data_offset': bigint;
  /**
   * The dump is incomplete: an LKCD END record carrying DUMP_DH_TRUNCATED,
   * an LKCD file cut short before its END record, a kdump-compressed file
   * makedumpfile marked DUMP_DH_COMPRESSED_INCOMPLETE.
   */
  'dump.truncated': boolean;
  /** How an RLE LKCD dump's runs read: 'kernel' (00 N V = N+1 copies) or 'libkdumpfile' (N copies). */
  'dump.rle_convention'?: RleConvention;
}

/** complete: every selected page is present and intact; truncated: pages are missing, each listed; damaged: pages or headers fail their checks. */
export type DumpState = 'complete' | 'truncated' | 'damaged';

/**
 * verified: a checksum covers every header and page and all of them match;
 * failed: a checksum exists and something does not match (or the checksums
 * themselves are damaged); unverified: the dump carries no checksum (written
 * by another tool), only its structure was checked.
 */
export type ChecksumStatus = 'verified' | 'failed' | 'unverified';

/** Frames listed beside the dump, with why: missing ones, and the dumper's own ('dumper', not missing). */
export interface DumpRange {
  /** First PFN. */
  start: bigint;
  /** PFN after the last. */
  end: bigint;
  reason: DumpRangeReasonName;
}

/** Something that failed a check: a page (its PFN) or a structure (pfn null). */
export interface DumpProblem {
  pfn: bigint | null;
  /** Offset of the record or structure, from byte 0 of the dump. */
  offset: bigint;
  error: DumpError;
}

/** What a reader found about a dump's completeness and integrity. */
export interface DumpIntegrity {
  state: DumpState;
  checksum: ChecksumStatus;
  /** Missing ranges and the dumper's frames, by start PFN. */
  ranges: DumpRange[];
  /** Every check that failed; a damaged page reads as not present. */
  problems: DumpProblem[];
  /** Things worth saying that are not failures (an extension this reader does not know). */
  notes: string[];
}

/**
 * A device dump a dump carries (an NT_VMCOREDD note of a vmcore, LKCD's
 * device-dump block): what a crash recovery kernel's driver collected.
 */
export interface DeviceDumpEntry {
  /** dump_name: "<driver>_<bus id>". */
  name: string;
  /** Bytes of the dump: the note's data after dump_name, its page padding included (crash's "size"). */
  size: number;
  /** The dump's bytes; throws CorruptDumpError when a checksum the format keeps does not match. */
  data(): Uint8Array;
}

/** A dump a format recognised: its metadata and its pages. */
export interface ProbedDump {
  readonly attrs: DumpAttributes;
  /** The page's bytes (arch.page_size of them); throws FaultError if the page was not saved. */
  readPage(pfn: bigint): Uint8Array;
  /** readPage into `out` (arch.page_size bytes), returned; readers of every page reuse one buffer (formats may omit it). */
  readPageInto?(pfn: bigint, out: Uint8Array): Uint8Array;
  /** PFNs present, in file order. */
  pages(): Iterable<bigint>;
  /** Completeness and integrity as far as this reader can tell. */
  integrity(): DumpIntegrity;
  /** Where the page is stored in the dump, for an index of random reads; formats without records omit it. */
  record?(pfn: bigint): PageLocation | null;
  /** CRC32 of the page's stored bytes, when opened with pageCrc32. */
  pageCrc32?(pfn: bigint): number | null;
  /** Whether the page is stored compressed (formats that compress pages). */
  compressed?(pfn: bigint): boolean;
  /** The VMCOREINFO text the dump file itself carries (an ELF note), or null; LKCD keeps it only in memory. */
  vmcoreinfoText?(): string | null;
  /** The device dumps it carries, in the order they were added (formats that carry none omit it). */
  deviceDumps?(): DeviceDumpEntry[];
  /** Releases the file; the dump is unusable afterwards. */
  close(): void;
}

/** Where a page's record is in the dump: offset of its header, stored size, flags (format-specific). */
export interface PageLocation {
  offset: bigint;
  size: number;
  flags: number;
}

/** How a probe treats problems after the headers. */
export interface ProbeOptions {
  /**
   * 'strict' (the default): the first failed check throws. 'salvage': failed
   * checks are collected in integrity(); damaged pages read as not present and
   * the rest stays readable. A broken header throws in both.
   */
  mode?: 'strict' | 'salvage';
  /** Called during a walk with bytes walked and the source's size. */
  onProgress?: (doneBytes: bigint, totalBytes: bigint) => void;
  /** Decode every page while opening: a page that does not decode to a full page is damaged. */
  verifyPages?: boolean;
  /** Keep a CRC32 of each page's stored bytes (pageCrc32()). */
  pageCrc32?: boolean;
  /**
   * A caller's index of the pages (the SQLite index) that replaces the walk:
   * pages are found through it, each checked against the record it points at.
   */
  index?: (pfn: bigint) => PageLocation | null;
  /** With `index`: where the end of the page records is, so the listed ranges are read without a walk. */
  endOffset?: bigint;
  /** With `index`: the RLE convention a walk chose for the dump before (the index keeps it); default the kernel's. */
  rle?: RleConvention;
}

export interface DumpFormatOps {
  readonly name: DumpFormatName;
  /**
   * Return null for "not this format"; throw for "this format, but broken".
   * On success the returned dump owns `file` and closes it in close().
   */
  probe(file: DumpSource, opts?: ProbeOptions): ProbedDump | null;
}

/**
 * Opens `path` for reading. A missing file is a one-line NOINPUT error
 * naming it; a directory or other non-file is an IO error.
 */
export function openDumpFile(path: string): DumpFile {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    throw ioError('opening dump', e as NodeJS.ErrnoException);
  }
  let st: fs.BigIntStats;
  try {
    st = fs.fstatSync(fd, { bigint: true });
  } catch (e) {
    fs.closeSync(fd);
    throw ioError(`opening dump ${path}`, e as NodeJS.ErrnoException);
  }
  if (!st.isFile() && !st.isBlockDevice()) {
    fs.closeSync(fd);
    throw new DumpError('IO', `opening dump: ${path}: ${st.isDirectory() ? 'is a directory' : 'not a regular file'}`,
      { file: path });
  }
  return fdSource(path, fd, st.size, 0n, true);
}

/**
 * A DumpSource over `size` bytes of an open file descriptor starting at
 * `base` (the dump device: its dump starts at DUMP_HEADER_OFFSET). `owned`:
 * close() closes the descriptor.
 */
export function fdSource(path: string, fd: number, size: bigint, base: bigint, owned: boolean): DumpSource {
  let closed = false;
  return {
    path, size, base,
    readAt(out: Uint8Array, position: bigint): number {
      if (position < 0n || position >= size) return 0;
      const want = size - position < BigInt(out.length) ? Number(size - position) : out.length;
      let done = 0;
      while (done < want) {
        let n: number;
        try {
          n = fs.readSync(fd, out, done, want - done, base + position + BigInt(done));
        } catch (e) {
          throw ioError(`reading ${path} at offset ${hex(base + position + BigInt(done))}`, e as NodeJS.ErrnoException);
        }
        if (n === 0) break;
        done += n;
      }
      return done;
    },
    close(): void {
      if (closed) return;
      closed = true;
      if (owned) fs.closeSync(fd);
    },
  };
}

/** A DumpSource over bytes in memory (tests, and extension areas read whole). */
export function bytesSource(path: string, bytes: Uint8Array, base = 0n): DumpSource {
  return {
    path, size: BigInt(bytes.length), base,
    readAt(out: Uint8Array, position: bigint): number {
      if (position < 0n || position >= BigInt(bytes.length)) return 0;
      const at = Number(position);
      const n = Math.min(out.length, bytes.length - at);
      out.set(bytes.subarray(at, at + n));
      return n;
    },
    close(): void { /* nothing held */ },
  };
}

/** Closes a file opened by openDumpFile. */
export function closeDumpFile(file: DumpFile): void {
  file.close();
}

/**
 * Reads up to `out.length` bytes at `position`, retrying short reads;
 * returns how many bytes the source had there (fewer only at its end).
 */
export function readDumpFileAt(file: DumpSource, out: Uint8Array, position: bigint): number {
  return file.readAt(out, position);
}

/** The place of dump offset `offset` in what the source names (for messages). */
export function placeOf(src: DumpSource, offset: bigint): bigint {
  return src.base + offset;
}

/** A reader that can decode every page now and list what failed (the kdump-compressed and ELF readers). */
export interface PageVerifier {
  verifyAll(onProgress?: (done: bigint, total: bigint) => void): void;
  integrity(): DumpIntegrity;
  close(): void;
}

/**
 * With opts.verifyPages, decodes every page of a dump just opened: in
 * strict mode the first bad page throws (the dump closed); in salvage mode
 * bad pages stay listed by integrity() and read as not present.
 */
export function verifyOnProbe<T extends PageVerifier>(dump: T | null, opts: ProbeOptions): T | null {
  if (!dump || !opts.verifyPages) return dump;
  dump.verifyAll(opts.onProgress);
  const first = dump.integrity().problems[0];
  if (first && opts.mode !== 'salvage') {
    dump.close();
    throw first.error;
  }
  return dump;
}
