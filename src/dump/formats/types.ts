/**
 * The format table's vocabulary: a dump file handle, the ops every format
 * exports, what a successful probe returns, and the one attribute record
 * (libkdumpfile's dotted attribute names) that `lkcd info` prints and
 * src/store stores.
 */
import fs from 'node:fs';
import { DumpError, hex, ioError } from '../../codec/index.js';
import type { PtRegs } from '../../kernel/structs/pt_regs.js';

/** An open dump file: probes read it through `fd`; `size` bounds every offset read from it. */
export interface DumpFile {
  readonly path: string;
  readonly fd: number;
  readonly size: bigint;
}

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
  'linux.uts.release': string;
  'linux.uts.nodename': string;
  'linux.uts.version': string;
  'linux.uts.machine': string;
  /** dh_current_task: address of the task_struct that dumped. */
  'crash.current_task': bigint;
  /** dha_regs: pt_regs of the dumping CPU. */
  'crash.regs': PtRegs;
  /** File offset of the first page record. */
  'dump.data_offset': bigint;
  /** The end record carries DUMP_DH_TRUNCATED ("dump is incomplete"). */
  'dump.truncated': boolean;
}

/** A dump a format recognised: its metadata and its pages. */
export interface ProbedDump {
  readonly attrs: DumpAttributes;
  /** The page's bytes (arch.page_size of them); throws FaultError if the page was not saved. */
  readPage(pfn: bigint): Uint8Array;
  /** PFNs present, in file order. */
  pages(): Iterable<bigint>;
  /** Releases the file; the dump is unusable afterwards. */
  close(): void;
}

export interface DumpFormatOps {
  readonly name: DumpFormatName;
  /**
   * Return null for "not this format"; throw for "this format, but broken".
   * On success the returned dump owns `file` and closes it in close().
   */
  probe(file: DumpFile): ProbedDump | null;
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
  return { path, fd, size: st.size };
}

/** Closes a file opened by openDumpFile. */
export function closeDumpFile(file: DumpFile): void {
  fs.closeSync(file.fd);
}

/**
 * Reads up to `out.length` bytes at `position`, retrying short reads;
 * returns how many bytes the file had there (fewer only at its end).
 */
export function readDumpFileAt(file: DumpFile, out: Uint8Array, position: bigint): number {
  let done = 0;
  while (done < out.length) {
    let n: number;
    try {
      n = fs.readSync(file.fd, out, done, out.length - done, position + BigInt(done));
    } catch (e) {
      throw ioError(`reading ${file.path} at offset ${hex(position + BigInt(done))}`, e as NodeJS.ErrnoException);
    }
    if (n === 0) break;
    done += n;
  }
  return done;
}
