/**
 * The LKCD dump (`dump.N`, or the dump on a dump device), formats v8 and
 * v9, read the way crash (lkcd_v8.c: lkcd_dump_init_v8) and libkdumpfile
 * (lkcd.c) read it:
 *
 *   offset 0                 dump_header (v8: 734 bytes, v9: 742)
 *   offset dh_header_size    dump_header_asm (x86_64, 6336 bytes)
 *   LKCD_EXT_LOCATOR_OFFSET  ours, optional: where the extension area is (lkcd_ext.ts)
 *   first page record        v8: LKCD_OFFSET_TO_FIRST_PAGE (64 KiB); v9: dh_dump_buffer_size
 *   page records             { dump_page, dp_size bytes }, back to back, any PFN order
 *   end record               dump_page with DUMP_DH_END (optionally | DUMP_DH_TRUNCATED), dp_size 0
 *   extension area           ours, optional: listed ranges with reasons, checksums, device dumps (lkcd_ext.ts)
 *   padding                  anything (the kernel fills the last buffer with 'm')
 *
 * Opening walks the page records once (lkcd_walk.ts) and keeps a PFN ->
 * record index. When the dump carries checksums, they frame the walk and
 * every header, record header and page is checked against them. Nothing
 * is sized from a header value before that value is checked against the
 * source and the page size.
 */
import {
  CorruptDumpError, DumpError, FaultError, InternalError, TruncatedError, hex, u32, u64, viewOf, vmcoredd_header, type Where,
} from '../../codec/index.js';
import { PAGE_SHIFT, PAGE_SIZE } from '../../machine/index.js';
import {
  DUMP_COMPRESS_GZIP, DUMP_COMPRESS_LZ4, DUMP_COMPRESS_NAMES, DUMP_COMPRESS_RLE, isDumpCompress, makePageCodec, nativeThreads, pageCrc32, rleDecodedLength,
  type DumpCompress, type PageCodec, type RleConvention,
} from '../codecs/index.js';
import { BatchPageVerifier } from './page_verifier.js';
import {
  DUMP_ASM_MAGIC_NUMBER, DUMP_DH_COMPRESSED, DUMP_DH_END, DUMP_DH_TRUNCATED, DUMP_MAGIC_LIVE, DUMP_MAGIC_NUMBER, DUMP_MAX_NUM_CPUS,
} from '../lkcd/constants.js';
import { dump_header, dump_header_v8, type DumpHeader } from '../lkcd/dump_header.js';
import {
  DUMP_ASM_NR_CPUS_MAX, DUMP_HEADER_ASM_CPU_SIZE, DUMP_HEADER_ASM_FIXED_SIZE, dump_header_asm_head, dumpHeaderAsmFor, nrCpusOfAsmSize,
  type DumpHeaderAsm,
} from '../lkcd/dump_header_asm.js';
import { dump_page, type DumpPage } from '../lkcd/dump_page.js';
import {
  LKCD_CSUM_F_LOCATOR, crc32Of, parseExtensions, readLkcdDeviceDump, readLocator, type CsumBlock, type LkcdDeviceDump,
  type LkcdExtensions, type LocatorFound,
} from './lkcd_ext.js';
import {
  endRecordProblem, pageRecordProblem, recordWhere, walkLkcdRecords, type RecordExpectations, type RecordLimits, type WalkOutcome,
} from './lkcd_walk.js';
import {
  openDumpFile, placeOf, readDumpFileAt, type ChecksumStatus, type DumpAttributes, type DumpCompressionName,
  type DeviceDumpEntry, type DumpFile, type DumpFormatOps, type DumpIntegrity, type DumpProblem, type DumpRange, type DumpSource, type DumpState,
  type ProbeOptions, type ProbedDump,
} from './types.js';

// ---- versions and layout constants ------------------------------------------------------

/** dh_version values (crash defs.h LKCD_DUMP_V8/V9). */
export const LKCD_DUMP_V8 = 0x8;
export const LKCD_DUMP_V9 = 0x9;
/** The low nibble of dh_version is the format version (crash defs.h). */
export const LKCD_DUMP_VERSION_NUMBER_MASK = 0xf;
/** "MCLX mod of LKCD" and "Extra page header data" bits of dh_version (crash defs.h); not supported here. */
export const LKCD_DUMP_MCLX_V0 = 0x80000000;
export const LKCD_DUMP_MCLX_V1 = 0x40000000;
/** Offset of the first page record in a v8 dump (crash defs.h, libkdumpfile lkcd.c). */
export const LKCD_OFFSET_TO_FIRST_PAGE = 65536;

export { dump_header_v8, type DumpHeaderV8 } from '../lkcd/dump_header.js';
export {
  LKCD_MISSING_TRAILER_MAGIC, encodeLkcdMissingTrailer, lkcd_missing_range, lkcd_missing_trailer,
} from './lkcd_ext.js';

// ---- public types --------------------------------------------------------------------

/** Where one page lives in the dump: its dump_page header's offset, dp_size and dp_flags. */
export interface LkcdPageRecord {
  offset: bigint;
  size: number;
  flags: number;
}

/** Finds a page's record without walking the file (e.g. from the SQLite index); null: not saved. */
export type LkcdIndexLookup = (pfn: bigint) => LkcdPageRecord | null;

export interface LkcdOpenOptions extends ProbeOptions {
  /**
   * Called during the walk for each record that passed every check; an
   * error it returns marks that page damaged (verify decompresses here, so
   * the dump is read once).
   */
  inspect?: (pfn: bigint, dp: DumpPage, data: Uint8Array, offset: bigint) => DumpError | null;
}

/** Something that failed a check (a page, or a structure when pfn is null). */
export type LkcdBadPage = DumpProblem;

export interface LkcdVerifyResult {
  /** Page records seen (good and bad). */
  pages: number;
  compressed: number;
  raw: number;
  bad: LkcdBadPage[];
  /** The end record carries DUMP_DH_TRUNCATED. */
  truncated: boolean;
  /** Offset of the end record, or null when there is none. */
  endOffset: bigint | null;
  /** [start, end) of the ranges listed missing (not the dumper's own). */
  missingRanges: Array<[bigint, bigint]>;
  ranges: DumpRange[];
  state: DumpState;
  checksum: ChecksumStatus;
  notes: string[];
}

// ---- header ----------------------------------------------------------------------------

/** Everything taken from the two headers, checked. */
export interface LkcdHeaders {
  version: number;
  /** The header in v9 shape; a v8 header gets dh_dump_buffer_size = LKCD_OFFSET_TO_FIRST_PAGE. */
  header: DumpHeader;
  asm: DumpHeaderAsm;
  /** NR_CPUS of the kernel that wrote the dump, from dha_header_size (the per-CPU arrays are this long). */
  nrCpus: number;
  /** dha_header_size: bytes of the arch header. */
  asmSize: number;
  pageSize: number;
  compress: DumpCompress;
  dataOffset: bigint;
}

/** Offset just past the arch header. */
function headersEndOf(h: LkcdHeaders): bigint {
  return BigInt(h.header.dh_header_size + h.asmSize);
}

function byteSwap64(v: bigint): bigint {
  let out = 0n;
  for (let i = 0; i < 8; i++) {
    out = (out << 8n) | ((v >> BigInt(8 * i)) & 0xffn);
  }
  return out;
}

function isLkcdMagic(v: bigint): boolean {
  return v === DUMP_MAGIC_NUMBER || v === DUMP_MAGIC_LIVE;
}

/** Adds the file to a decode error's place, shifting its offset to a file offset. */
function inFile(err: unknown, file: DumpFile, base: bigint): unknown {
  if (err instanceof DumpError) {
    const offset = placeOf(file, err.where.offset === undefined ? base : base + BigInt(err.where.offset));
    return new DumpError(err.code, err.message, { ...err.where, file: file.path, offset }, { cause: err });
  }
  return err;
}

function headerWhere(file: DumpFile, field: keyof DumpHeader): Where {
  return { file: file.path, struct: 'dump_header', field, offset: placeOf(file, BigInt(dump_header.offsetOf[field])) };
}

/** Reads `length` bytes at `offset` (fewer at the end of the source). */
function readSome(file: DumpFile, offset: bigint, length: number): Uint8Array {
  const buf = new Uint8Array(length);
  return buf.subarray(0, readDumpFileAt(file, buf, offset));
}

/**
 * Reads and checks both headers. Returns null when the magic is not an
 * LKCD one in either byte order ("not mine"); throws for an LKCD file that
 * is broken or that this reader does not support. The arch header may
 * have been written for any NR_CPUS: dha_header_size says which, and the
 * per-CPU arrays are read at the offsets that NR_CPUS gives them.
 */
export function readHeaders(file: DumpFile): LkcdHeaders | null {
  const head = readSome(file, 0n, dump_header.size);
  const got = head.length;
  const view = viewOf(head);
  if (got < u64.size) return null;
  const magic = view.getBigUint64(0, true);
  if (!isLkcdMagic(magic)) {
    if (isLkcdMagic(byteSwap64(magic))) {
      throw new DumpError('UNSUPPORTED', 'big-endian LKCD dump: only little-endian x86_64 dumps are supported',
        headerWhere(file, 'dh_magic_number'));
    }
    return null;
  }
  if (got < dump_header.offsetOf.dh_version + u32.size) {
    throw new TruncatedError(`LKCD header: file of ${got} bytes ends inside dh_version`, headerWhere(file, 'dh_version'));
  }
  const rawVersion = view.getUint32(dump_header.offsetOf.dh_version, true);
  const version = rawVersion & LKCD_DUMP_VERSION_NUMBER_MASK;
  if (rawVersion !== version || (version !== LKCD_DUMP_V8 && version !== LKCD_DUMP_V9)) {
    const mclx = rawVersion & (LKCD_DUMP_MCLX_V0 | LKCD_DUMP_MCLX_V1) ? ' (MCLX variant)' : '';
    throw new DumpError('UNSUPPORTED',
      `unsupported LKCD dump version ${rawVersion} (${hex(rawVersion)})${mclx}: only versions 8 and 9 are read (dh_version)`,
      headerWhere(file, 'dh_version'));
  }

  let header: DumpHeader;
  let codecSize: number;
  try {
    if (version === LKCD_DUMP_V8) {
      header = { ...dump_header_v8.decode(view, 0), dh_dump_buffer_size: BigInt(LKCD_OFFSET_TO_FIRST_PAGE) };
      codecSize = dump_header_v8.size;
    } else {
      header = dump_header.decode(view, 0);
      codecSize = dump_header.size;
    }
  } catch (e) {
    throw inFile(e, file, 0n);
  }

  if (header.dh_header_size !== codecSize) {
    throw new CorruptDumpError(
      `dh_header_size ${header.dh_header_size} is not sizeof(dump_header_t) ${codecSize} of version ${version}`,
      headerWhere(file, 'dh_header_size'));
  }
  const pageSize = header.dh_page_size;
  if (pageSize === 0 || (pageSize & (pageSize - 1)) !== 0) {
    throw new CorruptDumpError(`dh_page_size ${pageSize} is not a power of two`, headerWhere(file, 'dh_page_size'));
  }
  if (pageSize !== PAGE_SIZE) {
    throw new DumpError('UNSUPPORTED', `dh_page_size ${pageSize}: x86_64 dumps have ${PAGE_SIZE}-byte pages`,
      headerWhere(file, 'dh_page_size'));
  }
  const compress = header.dh_dump_compress;
  // LZ4 pages are stage 1's in memory only: the writeout deflates them, so no dump file holds them.
  if (!isDumpCompress(compress) || compress === DUMP_COMPRESS_LZ4) {
    throw new DumpError('UNSUPPORTED', compress === DUMP_COMPRESS_LZ4
      ? `dh_dump_compress ${hex(compress)} (lz4) is the page codec of a dump kept in memory, never of a dump file`
      : `unknown dump compression ${compress} (dh_dump_compress)`,
    headerWhere(file, 'dh_dump_compress'));
  }

  // The part of the arch header that does not depend on NR_CPUS first: it says how long the rest is.
  const asmAt = BigInt(header.dh_header_size);
  const fixed = readSome(file, asmAt, DUMP_HEADER_ASM_FIXED_SIZE);
  const asmWhere = (field: keyof DumpHeaderAsm, nrCpus = DUMP_MAX_NUM_CPUS): Where => ({
    file: file.path, struct: 'dump_header_asm', field,
    offset: placeOf(file, asmAt + BigInt(dumpHeaderAsmFor(nrCpus).offsetOf[field])),
  });
  let asmMagic: bigint;
  let asmSize: number;
  try {
    const fv = viewOf(fixed);
    const probe = dump_header_asm_head.decode(fv, 0);
    asmMagic = probe.dha_magic_number;
    asmSize = probe.dha_header_size;
  } catch (e) {
    throw inFile(e, file, asmAt);
  }
  if (asmMagic !== DUMP_ASM_MAGIC_NUMBER) {
    throw new CorruptDumpError(`invalid magic number ${hex(asmMagic)} for the x86_64 arch header`, asmWhere('dha_magic_number'));
  }
  const nrCpus = nrCpusOfAsmSize(asmSize);
  if (nrCpus === null) {
    throw new CorruptDumpError(
      `dha_header_size ${asmSize} is not the size of an x86_64 arch header for any NR_CPUS from 1 to ${DUMP_ASM_NR_CPUS_MAX} ` +
      `(${DUMP_HEADER_ASM_FIXED_SIZE} + ${DUMP_HEADER_ASM_CPU_SIZE} x NR_CPUS)`, asmWhere('dha_header_size'));
  }

  const dataOffset = header.dh_dump_buffer_size;
  const headersEnd = asmAt + BigInt(asmSize);
  if (dataOffset < headersEnd || dataOffset % BigInt(pageSize) !== 0n) {
    throw new CorruptDumpError(
      `${version === LKCD_DUMP_V8 ? `the first page record at ${hex(dataOffset)} (LKCD_OFFSET_TO_FIRST_PAGE)` : `dh_dump_buffer_size ${hex(dataOffset)}`} ` +
      `is not a page-aligned offset past the headers (which end at ${hex(headersEnd)}, NR_CPUS ${nrCpus})`,
      version === LKCD_DUMP_V8 ? asmWhere('dha_header_size', nrCpus) : headerWhere(file, 'dh_dump_buffer_size'));
  }
  if (dataOffset > file.size) {
    throw new TruncatedError(
      `file of ${hex(file.size)} bytes ends before the first page record at offset ${hex(dataOffset)}`,
      { file: file.path, offset: placeOf(file, dataOffset), struct: 'dump_page' });
  }
  let asm: DumpHeaderAsm;
  try {
    asm = dumpHeaderAsmFor(nrCpus).decode(viewOf(readSome(file, asmAt, asmSize)), 0);
  } catch (e) {
    throw inFile(e, file, asmAt);
  }
  return { version, header, asm, nrCpus, asmSize, pageSize, compress, dataOffset };
}

// ---- the index -------------------------------------------------------------------------

/** Largest dh_memory_size (pages) a PFN -> record array is made for: 2^24 pages (64 GiB of RAM) is 64 MiB of index. */
const PFN_INDEX_PAGES_LIMIT = 1n << 24n;
/** The array may exceed the dump file's size by this much (a kernel-pages dump of a big machine is small). */
const PFN_INDEX_SLACK_BYTES = 16n << 20n;

/** 2^32: a PFN or the low word of an offset. */
const U32 = 0x100000000;

/**
 * Ascending runs of PFNs a lookup binary-searches before the table falls
 * back to an array by frame: dumps are written in a few ascending passes
 * (one per dump level), so their records form a handful of runs.
 */
const PFN_RUNS_LIMIT = 8;

/**
 * PFN -> record, in typed arrays: 13 bytes a record (PFN 4, offset 6,
 * size 2, flags 1), 17 with the CRC32 a caller asked for, sized once from
 * the count the dump announces (as far as the file can hold that many
 * records) and grown by doubling only past it. PFNs are found by binary
 * search in the ascending runs the records form (the walk refuses a PFN
 * twice, so a PFN is in one run at most); past PFN_RUNS_LIMIT runs, through
 * an array of 4 bytes per frame when dh_memory_size is plausible (records
 * beyond it were refused by the walk), else a map that grows with the
 * records.
 */
class RecordTable {
  /** Slots used (removed records keep theirs). */
  count = 0;
  /** Records present. */
  live = 0;
  /** Low 32 bits of each PFN; the rare PFN of 2^32 or more is in bigPfn. */
  private pfnLo: Uint32Array;
  private readonly bigPfn = new Map<number, number>();
  /** Slots whose record was taken out (a page found damaged after the walk). */
  private readonly removed = new Set<number>();
  /** Offset of the record header: low 32 bits, and the 16 above (files below 256 TiB). */
  private offLo: Uint32Array;
  private offHi: Uint16Array;
  private size: Uint16Array;
  private flags: Uint8Array;
  private crc: Uint32Array | null;
  /** Slot where each ascending run of PFNs starts, while the records form at most PFN_RUNS_LIMIT runs; then null. */
  private runStarts: number[] | null = [];
  /** The run the last lookup found its PFN in: reads go page after page. */
  private lastRun = 0;
  /** Record index + 1 by PFN (0: none), once the runs are given up, when dh_memory_size is plausible. */
  private byFrame: Uint32Array | null = null;
  /** Record index by PFN, once the runs are given up, when the array above is not made. */
  private byPfn: Map<number, number> | null = null;
  private readonly memoryPages: number;

  /**
   * `memoryPages` is dh_memory_size, trusted for the array only as far as the file's size makes it plausible;
   * `expectedRecords` (the checksum extension's count, else dh_num_pages) sizes the table at once, as far as
   * the file can hold that many records (a header and a byte each). `withCrc`: keep each page's CRC32.
   */
  constructor(memoryPages: bigint, fileSize: bigint, expectedRecords: number, withCrc: boolean) {
    const plausible = memoryPages > 0n && memoryPages <= PFN_INDEX_PAGES_LIMIT && memoryPages * 4n <= fileSize + PFN_INDEX_SLACK_BYTES;
    this.memoryPages = plausible ? Number(memoryPages) : 0;
    const room = Math.max(1024, Math.min(expectedRecords, Number(fileSize / BigInt(dump_page.size + 1))));
    this.pfnLo = new Uint32Array(room);
    this.offLo = new Uint32Array(room);
    this.offHi = new Uint16Array(room);
    this.size = new Uint16Array(room);
    this.flags = new Uint8Array(room);
    this.crc = withCrc ? new Uint32Array(room) : null;
  }

  /** Gives up the runs: every record so far (slots below count) goes into the array by frame (or the map). */
  private indexByFrame(): void {
    this.runStarts = null;
    if (this.memoryPages > 0) this.byFrame = new Uint32Array(this.memoryPages);
    else this.byPfn = new Map();
    for (let i = 0; i < this.count; i++) if (!this.removed.has(i)) this.indexSlot(this.pfnAt(i), i);
  }

  private indexSlot(pfn: number, i: number): void {
    if (this.byFrame && pfn < this.byFrame.length) this.byFrame[pfn] = i + 1;
    else (this.byPfn ??= new Map()).set(pfn, i);
  }

  /** Slot of `pfn` in run r ([runStarts[r], next start)), or -1. */
  private searchRun(r: number, pfn: number): number {
    const starts = this.runStarts!;
    let lo = starts[r];
    let hi = r + 1 < starts.length ? starts[r + 1] : this.count;
    const a = this.pfnLo;
    if (hi === lo || pfn < a[lo] || pfn > a[hi - 1]) return -1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (a[mid] < pfn) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.count && a[lo] === pfn ? lo : -1;
  }

  private grow(capacity: number): void {
    const grow = <T extends Uint32Array | Uint16Array | Uint8Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(capacity);
      b.set(a.subarray(0, this.count));
      return b;
    };
    this.pfnLo = grow(this.pfnLo);
    this.offLo = grow(this.offLo);
    this.offHi = grow(this.offHi);
    this.size = grow(this.size);
    this.flags = grow(this.flags);
    if (this.crc) this.crc = grow(this.crc);
  }

  /** Index of the record holding `pfn`, or -1. */
  find(pfn: number): number {
    if (this.runStarts) {
      if (!(pfn >= 0 && pfn < U32) || this.count === 0) return -1;
      let i = this.searchRun(this.lastRun, pfn);
      for (let r = 0; i < 0 && r < this.runStarts.length; r++) {
        if (r === this.lastRun) continue;
        i = this.searchRun(r, pfn);
        if (i >= 0) this.lastRun = r;
      }
      return i >= 0 && this.removed.has(i) ? -1 : i;
    }
    if (this.byFrame && pfn >= 0 && pfn < this.byFrame.length) return this.byFrame[pfn] - 1;
    return this.byPfn?.get(pfn) ?? -1;
  }

  add(pfn: number, offset: bigint, size: number, flags: number, crc: number): void {
    if (this.count === this.pfnLo.length) this.grow(this.pfnLo.length * 2);
    const i = this.count;
    const off = Number(offset);
    const hi = Math.floor(off / U32);
    if (hi > 0xffff) throw new InternalError(`LKCD record at offset ${off}: beyond the 2^48 bytes the record table holds`);
    const runs = this.runStarts;
    if (runs) {
      // A PFN not above the last one starts a run; a PFN of 2^32 or more is not in pfnLo whole.
      if (pfn >= U32) this.indexByFrame();
      else if (i === 0 || pfn <= this.pfnLo[i - 1]) {
        if (runs.length === PFN_RUNS_LIMIT) this.indexByFrame();
        else runs.push(i);
      }
    }
    this.count++;
    this.pfnLo[i] = pfn % U32;
    if (pfn >= U32) this.bigPfn.set(i, pfn);
    this.offLo[i] = off % U32;
    this.offHi[i] = hi;
    this.size[i] = size;
    this.flags[i] = flags;
    if (this.crc) this.crc[i] = crc;
    if (!this.runStarts) this.indexSlot(pfn, i);
    this.live++;
  }

  /** Takes `pfn`'s record out (a page found damaged after the walk). */
  remove(pfn: number): void {
    const i = this.find(pfn);
    if (i < 0) return;
    if (this.byFrame && pfn < this.byFrame.length) this.byFrame[pfn] = 0;
    else this.byPfn?.delete(pfn);
    this.removed.add(i);
    this.live--;
  }

  record(i: number): LkcdPageRecord {
    return { offset: BigInt(this.offHi[i] * U32 + this.offLo[i]), size: this.size[i], flags: this.flags[i] };
  }

  crcAt(i: number): number {
    return this.crc ? this.crc[i] : 0;
  }

  /** The PFN of slot `i`, or -1 when its record was taken out. */
  pfnAt(i: number): number {
    if (this.removed.size > 0 && this.removed.has(i)) return -1;
    return this.bigPfn.size > 0 ? this.bigPfn.get(i) ?? this.pfnLo[i] : this.pfnLo[i];
  }
}

/** dp_address >> PAGE_SHIFT is always below this, so every PFN of a record is a safe integer. */
const PFN_LIMIT = 1n << BigInt(64 - PAGE_SHIFT);

/** The checksum extension's records as the walker's expectations. */
function csumExpectations(csum: CsumBlock): RecordExpectations {
  const r = csum.records;
  return {
    count: r.count,
    source: 'the checksum extension',
    expect: (i) => ({ pfn: r.pfn[i], size: r.size[i], flags: r.flags[i] }),
    check: (i, _dataCrc32, recordCrc32) => recordCrc32 === r.crc[i],
  };
}

/** What one walk of the records found. */
interface WalkResult {
  table: RecordTable;
  problems: DumpProblem[];
  damaged: Map<bigint, DumpError>;
  /** Page records seen, good and bad. */
  seen: number;
  /** Records whose header passed every check, by dp_flags. */
  compressed: number;
  raw: number;
  end: { offset: bigint; truncated: boolean; header: Uint8Array } | null;
  /** What stopped the walk before an END record, if anything did. */
  broken: DumpError | null;
  /** `broken` is only the file ending before an END record, at `stoppedAt`. */
  cutShort: boolean;
  stoppedAt: bigint;
  /** How the compressed pages of an RLE dump decode under each convention; null for other dumps. */
  rle: RleTally | null;
}

/**
 * The compressed pages of an RLE dump, by which RLE convention decodes
 * them to exactly one page: both (no run in the page, or runs that cancel
 * out: never, since each run adds one byte under the kernel's), only the
 * kernel's, only libkdumpfile's, or neither. Pages that are not exact
 * under both are kept with their place, to be named once the dump's
 * convention is chosen.
 */
class RleTally {
  both = 0;
  kernelOnly = 0;
  libOnly = 0;
  neither = 0;
  readonly odd: Array<{ pfn: bigint; offset: bigint; kernel: boolean; lib: boolean }> = [];

  add(pfn: bigint, offset: bigint, data: Uint8Array, pageSize: number): void {
    const kernel = rleDecodedLength(data, 'kernel', pageSize) === pageSize;
    const lib = rleDecodedLength(data, 'libkdumpfile', pageSize) === pageSize;
    if (kernel && lib) { this.both++; return; }
    if (kernel) this.kernelOnly++;
    else if (lib) this.libOnly++;
    else this.neither++;
    this.odd.push({ pfn, offset, kernel, lib });
  }
}

// ---- the dump ----------------------------------------------------------------------------

/** An open LKCD dump. */
export class LkcdDump implements ProbedDump {
  readonly attrs: DumpAttributes;
  private table: RecordTable | null = null;
  private end: { offset: bigint; truncated: boolean } | null = null;
  private listed: DumpRange[] | null = null;
  /** The device dumps of the extension area (LKCDVMDD), found with the listed ranges. */
  private devdumps: LkcdDeviceDump[] = [];
  private problems: DumpProblem[] = [];
  private damaged = new Map<bigint, DumpError>();
  private notes: string[] = [];
  private checksum: ChecksumStatus = 'unverified';
  private recordsSeen = 0;
  private broken: DumpError | null = null;
  private kinds = { compressed: 0, raw: 0 };
  private extentEnd: bigint | null = null;
  /** Where the file ends before an END record, when it was cut short. */
  private cutShort: { offset: bigint; error: DumpError } | null = null;
  /** The RLE convention the dump's pages use (RLE dumps only). */
  private rle: RleConvention | null;
  private codec: PageCodec;
  private readonly inspectCodec: PageCodec | undefined;
  private readonly scratch: Uint8Array;
  private closed = false;

  private constructor(
    readonly file: DumpSource,
    private readonly h: LkcdHeaders,
    private readonly opts: LkcdOpenOptions,
  ) {
    this.rle = h.compress === DUMP_COMPRESS_RLE ? opts.rle ?? 'kernel' : null;
    this.codec = makePageCodec(h.compress, { rle: this.rle ?? undefined });
    this.inspectCodec = (opts.inspect as { codec?: PageCodec } | undefined)?.codec;
    this.scratch = new Uint8Array(dump_page.size + h.pageSize);
    const header = h.header;
    const attrs: DumpAttributes = {
      'file.format': 'lkcd',
      'file.description': `Linux Kernel Crash Dump v${h.version}`,
      'arch.name': 'x86_64',
      'arch.page_size': h.pageSize,
      'dump.compression': DUMP_COMPRESS_NAMES[h.compress] as DumpCompressionName,
      'dump.level': header.dh_dump_level,
      'dump.flags': header.dh_dump_flags,
      'dump.pages': header.dh_num_pages,
      'crash.panic_string': header.dh_panic_string,
      'crash.time': header.dh_time.tv_sec,
      'crash.time_usec': header.dh_time.tv_usec,
      'dump.memory_pages': header.dh_memory_size,
      'linux.uts.release': header.dh_utsname_release,
      'linux.uts.nodename': header.dh_utsname_nodename,
      'linux.uts.version': header.dh_utsname_version,
      'linux.uts.machine': header.dh_utsname_machine,
      'crash.current_task': header.dh_current_task,
      'crash.regs': h.asm.dha_regs,
      'dump.data_offset': h.dataOffset,
      'dump.truncated': false,
    };
    if (this.rle) attrs['dump.rle_convention'] = this.rle;
    if (this.lazyEnd) {
      // Only the end record (or the walk that finds none) knows; find it when someone asks.
      Object.defineProperty(attrs, 'dump.truncated', { enumerable: true, get: () => this.truncatedNow() });
    }
    this.attrs = attrs;
  }

  /** Opens the dump in `file` (which it then owns), or returns null when `file` is not LKCD. */
  static probe(file: DumpSource, options: LkcdOpenOptions = {}): LkcdDump | null {
    const h = readHeaders(file);
    if (!h) return null;
    const opts = options.verifyPages && !options.inspect ? { ...options, inspect: decodeInspector(file, h.compress) } : options;
    const dump = new LkcdDump(file, h, opts);
    try {
      if (opts.index) {
        if (opts.endOffset !== undefined) dump.readEndAt(opts.endOffset);
      } else {
        dump.open();
        if (opts.mode !== 'salvage' && dump.problems.length > 0) throw dump.problems[0].error;
      }
    } catch (e) {
      dump.codec.close();
      dump.inspectCodec?.close();
      throw e;
    }
    return dump;
  }

  /** The format version, LKCD_DUMP_V8 or LKCD_DUMP_V9. */
  get version(): number {
    return this.h.version;
  }

  /** The generic header, in v9 shape. */
  get header(): DumpHeader {
    return this.h.header;
  }

  get asmHeader(): DumpHeaderAsm {
    return this.h.asm;
  }

  /** NR_CPUS of the kernel that wrote the dump (from dha_header_size). */
  get nrCpus(): number {
    return this.h.nrCpus;
  }

  /** Whether the page's record is DUMP_DH_COMPRESSED. */
  compressed(pfn: bigint): boolean {
    return this.record(pfn)?.flags === DUMP_DH_COMPRESSED;
  }

  get dataOffset(): bigint {
    return this.h.dataOffset;
  }

  /** Offset of the end record (walks the file if an index replaced the walk). */
  get endOffset(): bigint {
    return this.endRecord().offset;
  }

  /** Offset just past the dump's last byte that matters: the extension area, or the END record. */
  get extent(): bigint {
    this.live();
    if (this.extentEnd === null) this.open();
    return this.extentEnd!;
  }

  private live(): void {
    if (this.closed) throw new InternalError(`LKCD dump ${this.file.path} used after close()`);
  }

  private limits(): RecordLimits {
    return { pageSize: this.h.pageSize, compress: this.h.compress, memoryPages: this.h.header.dh_memory_size };
  }

  /**
   * Reads the whole dump: the extension area (through the locator when it
   * is sound, else after walking to END), then the records, framed by the
   * checksums when there are some. Problems are collected, not thrown.
   */
  private open(): RecordTable {
    if (this.table) return this.table;
    const { file, h } = this;
    const found = this.findExtensions();
    const { locator, ext, areaAt } = found;
    const problems = found.problems;
    const csum = ext?.csum ?? null;
    const walk = csum ? this.walkWithChecksums(csum, locator, areaAt, problems) : found.walk ?? this.walkRecords(null, h.dataOffset);
    problems.push(...walk.problems);
    const notes: string[] = [];
    let lostChecksums = false;
    if (walk.cutShort && walk.broken) {
      this.cutShort = { offset: walk.stoppedAt, error: walk.broken };
      // Our locator names an area after the END record: cut off with it, that is no extra damage.
      const gone = locator?.problem && locator.problem.error.code === 'TRUNCATED' ? locator.problem : null;
      if (gone) {
        problems.splice(problems.indexOf(gone), 1);
        lostChecksums = true;
      }
      notes.push(`cut short: no END record, the file ends at offset ${hex(placeOf(file, file.size))}; ${walk.seen} page records before it ` +
        `are whole (${walk.broken.message})${gone ? '; the checksums written after the END record were cut off with it' : ''}`);
    }
    if (ext) {
      problems.push(...ext.problems);
      notes.push(...ext.notes);
      if (ext.csumSeen && !csum && !ext.problems.length) {
        problems.push({ pfn: null, offset: areaAt ?? 0n, error: new CorruptDumpError('the checksum extension cannot be read', { file: file.path, struct: 'lkcd_ext_header' }) });
      }
    }
    if (walk.rle) this.chooseRle(walk, problems, notes);
    this.problems = problems;
    this.notes = notes;
    this.damaged = walk.damaged;
    this.recordsSeen = walk.seen;
    this.broken = walk.broken;
    this.kinds = { compressed: walk.compressed, raw: walk.raw };
    this.table = walk.table;
    this.listed = ext?.ranges ?? [];
    this.devdumps = ext?.devdumps ?? [];
    // A dump that has checksums (or a locator, or a checksum block that cannot be read) is never 'unverified',
    // unless the file was cut short and took them with it.
    this.checksum = csum ? (problems.length ? 'failed' : 'verified') : lostChecksums ? 'unverified' : ext?.csumSeen || locator ? 'failed' : 'unverified';
    if (walk.end) this.setEnd(walk.end.offset, walk.end.truncated);
    else if (this.cutShort && !this.lazyEnd) this.attrs['dump.truncated'] = true;
    this.extentEnd = locator && !locator.problem ? locator.areaOffset + locator.areaLen
      : ext ? ext.end : walk.end ? walk.end.offset + BigInt(dump_page.size) : file.size;
    if (!this.opts.index) this.attrs['dump.pages'] = walk.table.live;
    this.opts.onProgress?.(file.size, file.size);
    return walk.table;
  }

  /**
   * Finds the extension area: through the locator when it is sound (its
   * bytes checked against the locator's CRC32), else after the END record
   * of a walk that trusts the record headers (that walk is returned, to be
   * used as is when the area holds no checksums).
   */
  private findExtensions(): { locator: LocatorFound | null; ext: LkcdExtensions | null; areaAt: bigint | null; walk: WalkResult | null; problems: DumpProblem[] } {
    const { file, h } = this;
    const problems: DumpProblem[] = [];
    const locator = readLocator(file, h.dataOffset, headersEndOf(h));
    if (locator && !locator.problem) {
      const crc = crc32Of(file, locator.areaOffset, locator.areaLen);
      if (crc !== locator.areaCrc32) {
        problems.push({ pfn: null, offset: locator.areaOffset, error: new CorruptDumpError(
          `the extension area at offset ${hex(placeOf(file, locator.areaOffset))} was altered: crc32 ${hex(crc)}, the locator says ${hex(locator.areaCrc32)}`,
          { file: file.path, struct: 'lkcd_ext_header', offset: placeOf(file, locator.areaOffset) }) });
      }
      const ext = parseExtensions(file, locator.areaOffset, locator.areaOffset + locator.areaLen);
      return { locator, ext, areaAt: locator.areaOffset, walk: null, problems };
    }
    if (locator?.problem) problems.push(locator.problem);
    const walk = this.walkRecords(null, h.dataOffset);
    if (!walk.end) return { locator, ext: null, areaAt: null, walk, problems };
    const areaAt = walk.end.offset + BigInt(dump_page.size);
    return { locator, ext: parseExtensions(file, areaAt, file.size), areaAt, walk, problems };
  }

  /**
   * The walk framed by the checksums: the headers, every record and the
   * END record checked against them, the END record found where the area
   * begins. Problems other than the walk's own go to `problems`.
   */
  private walkWithChecksums(csum: CsumBlock, locator: LocatorFound | null, areaAt: bigint | null, problems: DumpProblem[]): WalkResult {
    const { file } = this;
    if ((csum.flags & LKCD_CSUM_F_LOCATOR) && locator === null) {
      problems.push({ pfn: null, offset: 0n, error: new CorruptDumpError(
        'the extension locator in the header buffer is gone: the checksums say one was written',
        { file: file.path, struct: 'lkcd_ext_locator', field: 'magic', offset: placeOf(file, 0n) }) });
    }
    problems.push(...this.checkHeaders(csum));
    const walk = this.walkRecords(csumExpectations(csum), this.csumDataOffset(csum));
    if (walk.end) {
      const endCrc = crc32Of(file, walk.end.offset, BigInt(dump_page.size));
      if (endCrc !== csum.end_crc32) {
        problems.push({ pfn: null, offset: walk.end.offset, error: new CorruptDumpError(
          `the END record at offset ${hex(placeOf(file, walk.end.offset))} was altered (crc32 ${hex(endCrc)}, the checksums say ${hex(csum.end_crc32)})`,
          recordWhere(file, walk.end.offset, 'dp_flags')) });
      }
      if (areaAt !== null && walk.end.offset + BigInt(dump_page.size) !== areaAt) {
        problems.push({ pfn: null, offset: walk.end.offset, error: new CorruptDumpError(
          `the END record at offset ${hex(placeOf(file, walk.end.offset))} is not right before the extension area at ${hex(placeOf(file, areaAt))}`,
          recordWhere(file, walk.end.offset, 'dp_flags')) });
      }
    }
    return walk;
  }

  /** The headers as written, against the checksums: any altered byte of either is a problem. */
  private checkHeaders(csum: CsumBlock): DumpProblem[] {
    const { file, h } = this;
    const len = BigInt(h.header.dh_header_size + h.asmSize);
    if (BigInt(csum.header_len) !== len) {
      return [{ pfn: null, offset: 0n, error: new CorruptDumpError(
        `the headers were altered: they are ${len} bytes, the checksums cover ${csum.header_len}`,
        { file: file.path, struct: 'dump_header', field: 'dh_header_size', offset: placeOf(file, BigInt(dump_header.offsetOf.dh_header_size)) }) }];
    }
    const crc = crc32Of(file, 0n, len);
    if (crc === csum.header_crc32) return [];
    return [{ pfn: null, offset: 0n, error: new CorruptDumpError(
      `the dump header or the arch header was altered (crc32 ${hex(crc)}, the checksums say ${hex(csum.header_crc32)})`,
      { file: file.path, struct: 'dump_header', offset: placeOf(file, 0n) }) }];
  }

  /** Where the records start: the header's word, unless it was altered and the checksums' word is sound. */
  private csumDataOffset(csum: CsumBlock): bigint {
    const d = csum.data_offset;
    const headersEnd = BigInt(this.h.header.dh_header_size + this.h.asmSize);
    return d !== this.h.dataOffset && d >= headersEnd && d % BigInt(this.h.pageSize) === 0n && d <= this.file.size ? d : this.h.dataOffset;
  }

  /** One walk of the records; good ones go in the table, the others are problems. */
  private walkRecords(expected: RecordExpectations | null, start: bigint): WalkResult {
    const { file } = this;
    const outcome: WalkOutcome = { end: null, broken: null, stoppedAt: start, records: 0, cutShort: false };
    const r: WalkResult = {
      table: new RecordTable(this.h.header.dh_memory_size, file.size, expected?.count ?? Number(this.h.header.dh_num_pages), this.opts.pageCrc32 === true),
      problems: [], damaged: new Map(), seen: 0,
      compressed: 0, raw: 0, end: null, broken: outcome.broken,
      cutShort: false, stoppedAt: start, rle: this.h.compress === DUMP_COMPRESS_RLE ? new RleTally() : null,
    };
    const wantCrc = this.opts.pageCrc32 === true;
    const inspect = this.opts.inspect;
    const pageSize = this.h.pageSize;
    const bad = (pfn: bigint, offset: bigint, problem: DumpError): void => {
      r.problems.push({ pfn, offset, error: problem });
      // A damaged page reads as not present; the first problem names it.
      if (!r.damaged.has(pfn) && r.table.find(Number(pfn)) < 0) r.damaged.set(pfn, problem);
    };
    // Verifying every page of a GZIP dump: decompressed in batches on native threads, in walk order.
    const verifier = inspect && (inspect as Inspector).batchable && this.h.compress === DUMP_COMPRESS_GZIP
      ? BatchPageVerifier.open(nativeThreads(), this.h.pageSize, inspect, (p, problem) => {
        if (problem) bad(p.pfn, p.offset, problem);
        else r.table.add(Number(p.pfn), p.offset, p.dp.dp_size, p.dp.dp_flags, p.tag);
      })
      : null;
    try {
      for (const rec of walkLkcdRecords(file, this.limits(), { start, endRecord: true, expected, outcome, onProgress: this.opts.onProgress })) {
        r.seen++;
        let problem = rec.problem;
        if (!problem) {
          if (rec.dp.dp_flags === DUMP_DH_COMPRESSED) {
            r.compressed++;
            // Which RLE convention fits is decided for the whole dump once every page has been seen.
            r.rle?.add(rec.pfn, rec.offset, rec.data, pageSize);
          } else r.raw++;
          if (verifier) {
            verifier.add({ pfn: rec.pfn, offset: rec.offset, dp: rec.dp, tag: wantCrc ? rec.dataCrc32 ?? pageCrc32(rec.data) : 0 }, rec.data);
            continue;
          }
          if (inspect) problem = inspect(rec.pfn, rec.dp, rec.data, rec.offset);
        }
        if (problem) {
          // Every verdict before this record first, so problems and table keep the walk's order.
          verifier?.drain();
          bad(rec.pfn, rec.offset, problem);
          continue;
        }
        r.table.add(Number(rec.pfn), rec.offset, rec.dp.dp_size, rec.dp.dp_flags, wantCrc ? rec.dataCrc32 ?? pageCrc32(rec.data) : 0);
      }
      verifier?.drain();
    } finally {
      verifier?.close();
    }
    r.broken = outcome.broken;
    r.cutShort = outcome.cutShort;
    r.stoppedAt = outcome.stoppedAt;
    // A file that simply ends before its END record is cut short, not damaged: every record before is whole.
    if (outcome.broken && !outcome.cutShort) r.problems.push({ pfn: null, offset: outcome.stoppedAt, error: outcome.broken });
    if (outcome.end) {
      if (outcome.end.problem) r.problems.push({ pfn: null, offset: outcome.end.offset, error: outcome.end.problem });
      r.end = { offset: outcome.end.offset, truncated: (outcome.end.dp.dp_flags & DUMP_DH_TRUNCATED) !== 0, header: outcome.end.header };
    }
    return r;
  }

  /** Reads the end record at `offset` (given by the caller's index) and the ranges listed after it. */
  private readEndAt(offset: bigint): void {
    const { file } = this;
    const buf = new Uint8Array(dump_page.size);
    if (offset < this.h.dataOffset || readDumpFileAt(file, buf, offset) < dump_page.size) {
      throw new TruncatedError(`no end record at offset ${hex(placeOf(file, offset))}`, { file: file.path, offset: placeOf(file, offset), struct: 'dump_page', field: 'dp_flags' });
    }
    const dp = dump_page.decode(viewOf(buf), 0);
    const problem = endRecordProblem(file, offset, dp);
    if (problem) throw problem;
    this.setEnd(offset, (dp.dp_flags & DUMP_DH_TRUNCATED) !== 0);
    const ext = parseExtensions(file, offset + BigInt(dump_page.size), file.size);
    if (ext.problems.length) throw ext.problems[0].error;
    this.listed = ext.ranges;
    this.devdumps = ext.devdumps;
    this.notes = ext.notes;
  }

  private setEnd(offset: bigint, truncated: boolean): void {
    this.end = { offset, truncated };
    if (!this.lazyEnd) this.attrs['dump.truncated'] = truncated;
  }

  /** An index replaced the walk and gave no end offset: dump.truncated is a getter that walks. */
  private get lazyEnd(): boolean {
    return this.opts.index !== undefined && this.opts.endOffset === undefined;
  }

  /** dump.truncated: the END record says so, or there is none because the file was cut short. */
  private truncatedNow(): boolean {
    if (!this.end && !this.table) this.open();
    return this.cutShort !== null || this.endRecord().truncated;
  }

  /** The RLE convention the dump's pages were read with (RLE dumps only). */
  get rleConvention(): RleConvention | null {
    return this.rle;
  }

  /** Where the file ends before an END record (null when it has one). */
  get cutShortAt(): bigint | null {
    this.live();
    if (!this.table && !this.end) this.open();
    return this.cutShort?.offset ?? null;
  }

  /**
   * Picks the dump's RLE convention from how its compressed pages decode
   * (RleTally): the kernel's when no page needs libkdumpfile's, else
   * libkdumpfile's when no page needs the kernel's; a dump with pages of
   * both kinds, or none that decodes, is refused. Pages that do not decode
   * under the one chosen are damaged (named) when pages are verified, and
   * fail as they are read otherwise, as a gzip page does.
   */
  private chooseRle(walk: WalkResult, problems: DumpProblem[], notes: string[]): void {
    const t = walk.rle!;
    const total = t.both + t.kernelOnly + t.libOnly + t.neither;
    const first = (pred: (o: RleTally['odd'][number]) => boolean): string => {
      const o = t.odd.find(pred);
      return o ? ` (first: PFN ${hex(o.pfn)} at offset ${hex(placeOf(this.file, o.offset))})` : '';
    };
    let chosen: RleConvention;
    if (t.libOnly === 0 && (t.kernelOnly + t.both > 0 || t.neither === 0)) chosen = 'kernel';
    else if (t.kernelOnly === 0 && t.libOnly > 0) chosen = 'libkdumpfile';
    else {
      throw new CorruptDumpError(
        `the RLE pages fit neither run-length convention: of ${total} compressed pages, ${t.kernelOnly + t.both} decode to a page ` +
        `with 00 N V = N+1 copies (the kernel's, crash)${first((o) => !o.kernel)} and ${t.libOnly + t.both} with N copies ` +
        `(libkdumpfile's)${first((o) => !o.lib)}`, headerWhere(this.file, 'dh_dump_compress'));
    }
    if (chosen !== this.rle) {
      this.codec.close();
      this.codec = makePageCodec(this.h.compress, { rle: chosen });
      this.rle = chosen;
    }
    this.attrs['dump.rle_convention'] = chosen;
    notes.push(chosen === 'kernel'
      ? `RLE: 00 N V read as N+1 copies, as the kernel writes it (${t.kernelOnly} of ${total} compressed pages decode only so${t.kernelOnly === 0 ? ': no page has a run, both conventions read it alike' : ''})`
      : `RLE: 00 N V read as N copies, as libkdumpfile writes it (${t.libOnly} of ${total} compressed pages decode only so)`);
    if (!this.opts.verifyPages) return;
    for (const o of t.odd) {
      if (chosen === 'kernel' ? o.kernel : o.lib) continue;
      const error = new CorruptDumpError(`page data of PFN ${hex(o.pfn)}: rle page does not decompress to ${this.h.pageSize} bytes ` +
        `with ${chosen === 'kernel' ? 'N+1' : 'N'} copies per run (the dump's convention)`, recordWhere(this.file, o.offset, 'dp_size'));
      problems.push({ pfn: o.pfn, offset: o.offset, error });
      if (walk.table.find(Number(o.pfn)) >= 0) {
        walk.table.remove(Number(o.pfn));
        walk.compressed--;
      }
      if (!walk.damaged.has(o.pfn)) walk.damaged.set(o.pfn, error);
    }
  }

  private endRecord(): { offset: bigint; truncated: boolean } {
    if (!this.end) {
      this.open();
      if (!this.end) throw this.broken ?? this.problems.find((p) => p.pfn === null)?.error ?? new TruncatedError(`${this.file.path}: no end record`, { file: this.file.path });
    }
    return this.end;
  }

  /** Listed ranges with their reasons: missing ones and the dumper's own frames. */
  ranges(): DumpRange[] {
    this.live();
    if (this.listed === null) this.open();
    return this.listed!.map((r) => ({ ...r }));
  }

  /**
   * The device dumps the crash recovery kernel's drivers took, carried in
   * the extension area: each one's data is read back and checked against
   * its CRC32 when asked for.
   */
  deviceDumps(): DeviceDumpEntry[] {
    this.ranges();
    return this.devdumps.map((d) => ({ name: d.name, size: d.noteSize - vmcoredd_header.size, data: () => readLkcdDeviceDump(this.file, d) }));
  }

  /** Ranges [start_pfn, end_pfn) listed as missing (the dumper's own frames are not missing). */
  missingRanges(): Array<[bigint, bigint]> {
    return this.ranges().filter((r) => r.reason !== 'dumper').map((r) => [r.start, r.end]);
  }

  integrity(): DumpIntegrity {
    this.live();
    const ranges = this.ranges();
    if (this.opts.index && !this.table) {
      return { state: this.stateOf(ranges), checksum: this.checksum, ranges, problems: [], notes: [...this.notes] };
    }
    this.open();
    return { state: this.stateOf(ranges), checksum: this.checksum, ranges, problems: [...this.problems], notes: [...this.notes] };
  }

  private stateOf(ranges: DumpRange[]): DumpState {
    if (this.problems.length > 0) return 'damaged';
    if (!this.end && this.opts.index && !this.table) this.open();
    if (this.cutShort) return 'truncated';
    return this.endRecord().truncated || ranges.some((r) => r.reason !== 'dumper') ? 'truncated' : 'complete';
  }

  /** Damaged pages: present in the dump but failing a check; each reads as not present. */
  damagedPages(): Map<bigint, DumpError> {
    this.live();
    this.open();
    return new Map(this.damaged);
  }

  /** Records whose header passed every check, compressed and raw (a page damaged only in its data counts). */
  get recordKinds(): { compressed: number; raw: number } {
    this.live();
    this.open();
    return { ...this.kinds };
  }

  /** Page records seen by the walk, good and bad. */
  get recordsWalked(): number {
    this.live();
    this.open();
    return this.recordsSeen;
  }

  /** Where `pfn` is stored, or null when the dump does not hold it intact. */
  record(pfn: bigint): LkcdPageRecord | null {
    this.live();
    if (pfn < 0n || pfn >= PFN_LIMIT) return null;
    if (this.opts.index && !this.table) return this.checkedIndexRecord(pfn);
    const table = this.open();
    const i = table.find(Number(pfn));
    return i < 0 ? null : table.record(i);
  }

  /** CRC32 of the page's data, when opened with pageCrc32. */
  pageCrc32(pfn: bigint): number | null {
    if (!this.opts.pageCrc32) return null;
    const table = this.open();
    const i = table.find(Number(pfn));
    return i < 0 ? null : table.crcAt(i);
  }

  /** The caller's index entry for `pfn`, checked against the record header it points at. */
  private checkedIndexRecord(pfn: bigint): LkcdPageRecord | null {
    const rec = this.opts.index!(pfn);
    if (!rec) return null;
    const { file } = this;
    const hdr = this.scratch.subarray(0, dump_page.size);
    if (rec.offset < this.h.dataOffset || readDumpFileAt(file, hdr, rec.offset) < dump_page.size) {
      throw new TruncatedError(`index points PFN ${hex(pfn)} at offset ${hex(placeOf(file, rec.offset))}, outside the page records`,
        { file: file.path, offset: placeOf(file, rec.offset), struct: 'dump_page' });
    }
    const dp = dump_page.decode(viewOf(hdr), 0);
    if (dp.dp_address !== pfn << BigInt(PAGE_SHIFT) || dp.dp_size !== rec.size || dp.dp_flags !== rec.flags) {
      throw new CorruptDumpError(
        `index entry for PFN ${hex(pfn)} (size ${rec.size}, flags ${hex(rec.flags)}) disagrees with the record at offset ` +
        `${hex(placeOf(file, rec.offset))} (dp_address ${hex(dp.dp_address)}, dp_size ${dp.dp_size}, dp_flags ${hex(dp.dp_flags)})`,
        recordWhere(file, rec.offset, 'dp_address'));
    }
    const problem = pageProblemOf(file, rec.offset, dp, this.limits());
    if (problem) throw problem;
    if (rec.offset + BigInt(dump_page.size + rec.size) > file.size) {
      throw new TruncatedError(`file ends inside the page data of the record at offset ${hex(placeOf(file, rec.offset))}`,
        recordWhere(file, rec.offset, 'dp_size'));
    }
    return rec;
  }

  readPage(pfn: bigint): Uint8Array {
    return this.readPageInto(pfn, new Uint8Array(this.h.pageSize));
  }

  /**
   * readPage into the caller's buffer (arch.page_size bytes), which it
   * returns: a reader of every page reuses one buffer instead of leaving a
   * page of garbage per read.
   */
  readPageInto(pfn: bigint, out: Uint8Array): Uint8Array {
    if (out.length !== this.h.pageSize) throw new InternalError(`readPageInto: a buffer of ${out.length} bytes for a ${this.h.pageSize}-byte page`);
    const rec = this.record(pfn);
    const address = pfn << BigInt(PAGE_SHIFT);
    if (!rec) {
      const damaged = this.table ? this.damaged.get(pfn) : undefined;
      throw new FaultError(damaged
        ? `PFN ${hex(pfn)} (physical address ${hex(address)}) is damaged in the dump: ${damaged.message}`
        : `PFN ${hex(pfn)} (physical address ${hex(address)}) is not in the dump`,
      { file: this.file.path, address, space: 'phys' });
    }
    const data = this.scratch.subarray(0, rec.size);
    const dataOffset = rec.offset + BigInt(dump_page.size);
    if (readDumpFileAt(this.file, data, dataOffset) < rec.size) {
      throw new TruncatedError(`file ends inside the page data of PFN ${hex(pfn)}`, recordWhere(this.file, rec.offset, 'dp_size'));
    }
    return decodeRecord(this.file, this.codec, pfn, rec, data, out);
  }

  *pages(): Iterable<bigint> {
    this.live();
    const table = this.open();
    for (let i = 0; i < table.count; i++) {
      const pfn = table.pfnAt(i);
      if (pfn >= 0) yield BigInt(pfn);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.codec.close();
    this.inspectCodec?.close();
    this.file.close();
  }
}

/** The inspect hook verifyPages installs: it may run in batches (BatchPageVerifier), its verdict per page the same. */
type Inspector = NonNullable<LkcdOpenOptions['inspect']> & { codec?: PageCodec; batchable?: boolean };

/** An inspect hook that decodes every page (verifyPages), with its own codec. */
function decodeInspector(file: DumpSource, compress: DumpCompress): Inspector {
  const codec = makePageCodec(compress);
  const out = new Uint8Array(PAGE_SIZE);
  const fn = (pfn: bigint, dp: DumpPage, data: Uint8Array, offset: bigint): DumpError | null => {
    // RLE pages are checked once the dump's convention is known (chooseRle).
    if (compress === DUMP_COMPRESS_RLE && dp.dp_flags === DUMP_DH_COMPRESSED) return null;
    try {
      codec.decode(dp.dp_flags, data, out);
      return null;
    } catch (e) {
      const err = decodeProblem(file, pfn, offset, e);
      if (!(err instanceof DumpError)) throw err;
      return err;
    }
  };
  return Object.assign(fn, { codec, batchable: true });
}

function pageProblemOf(src: DumpSource, offset: bigint, dp: DumpPage, lim: RecordLimits): DumpError | null {
  return pageRecordProblem(src, offset, dp, lim);
}

/** Decompresses one record's data into `out`, naming the PFN and the record's offset on failure. */
function decodeRecord(
  file: DumpSource, codec: PageCodec, pfn: bigint, rec: LkcdPageRecord, data: Uint8Array, out: Uint8Array,
): Uint8Array {
  try {
    return codec.decode(rec.flags, data, out);
  } catch (e) {
    throw decodeProblem(file, pfn, rec.offset, e);
  }
}

function decodeProblem(file: DumpSource, pfn: bigint, offset: bigint, e: unknown): unknown {
  if (e instanceof DumpError && e.code !== 'INTERNAL') {
    const field = (e.where.field as keyof DumpPage | undefined) ?? 'dp_size';
    return new DumpError(e.code, `page data of PFN ${hex(pfn)}: ${e.message}`,
      recordWhere(file, offset, field in dump_page.offsetOf ? field : 'dp_size'), { cause: e });
  }
  return e;
}

// ---- entry points -----------------------------------------------------------------------

/** The format-table entry (src/dump/formats/index.ts). */
export const lkcdFormat: DumpFormatOps = {
  name: 'lkcd',
  probe: (file, opts) => LkcdDump.probe(file, opts),
};

function notLkcd(path: string): DumpError {
  return new DumpError('UNSUPPORTED', `${path}: not an LKCD dump (no DUMP_MAGIC_NUMBER at offset 0)`,
    { file: path, struct: 'dump_header', field: 'dh_magic_number', offset: 0n });
}

/** Opens an LKCD dump in `src` (which it then owns and closes). */
export function openLkcdSource(src: DumpSource, opts: LkcdOpenOptions = {}): LkcdDump {
  let dump: LkcdDump | null;
  try {
    dump = LkcdDump.probe(src, opts);
  } catch (e) {
    src.close();
    throw e;
  }
  if (!dump) {
    src.close();
    throw notLkcd(src.path);
  }
  return dump;
}

/**
 * Opens `path` as an LKCD dump. With `opts.index` no walk is done: pages
 * are found through the index (random reads only), each checked against
 * the record header it points at.
 */
export function openLkcdFile(path: string, opts: LkcdOpenOptions = {}): LkcdDump {
  return openLkcdSource(openDumpFile(path), opts);
}

/** Closes a dump opened by openLkcdFile. */
export function closeLkcdFile(dump: LkcdDump): void {
  dump.close();
}

/**
 * Checks every header, record and page of the LKCD dump in `src` (a path,
 * or a source it then owns) against its structure and, when it has them,
 * its checksums, and decompresses every page to exactly one page. Problems
 * are collected, not thrown, so one flipped bit is reported with its PFN
 * and offset and the check goes on. A broken header is thrown.
 */
export function verifyLkcd(src: string | DumpSource, onProgress?: (doneBytes: bigint, totalBytes: bigint) => void): LkcdVerifyResult {
  const dump = openLkcdSource(typeof src === 'string' ? openDumpFile(src) : src, { mode: 'salvage', onProgress, verifyPages: true });
  try {
    const integ = dump.integrity();
    const { compressed, raw } = dump.recordKinds;
    let endOffset: bigint | null = null;
    const truncated = dump.attrs['dump.truncated'];
    try {
      endOffset = dump.endOffset;
    } catch (e) {
      if (!(e instanceof DumpError) || e.code === 'INTERNAL') throw e;
    }
    return {
      pages: dump.recordsWalked, compressed, raw, bad: integ.problems, truncated, endOffset,
      missingRanges: integ.ranges.filter((r) => r.reason !== 'dumper').map((r) => [r.start, r.end]),
      ranges: integ.ranges, state: integ.state, checksum: integ.checksum, notes: integ.notes,
    };
  } finally {
    dump.close();
  }
}

/** Where a dump in a source ends and what its END says, found without a walk when the locator allows. */
export interface LkcdExtent {
  header: DumpHeader;
  /** Offset just past the dump's last byte: the extension area's end, or the END record's. */
  end: bigint;
  endOffset: bigint;
  truncated: boolean;
}

/**
 * The extent of the LKCD dump in `src`: null when it is not LKCD; throws
 * when its headers are broken, or when it has no locator and its records
 * cannot be walked to an END record.
 */
export function lkcdExtent(src: DumpSource): LkcdExtent | null {
  const h = readHeaders(src);
  if (!h) return null;
  const locator: LocatorFound | null = readLocator(src, h.dataOffset, headersEndOf(h));
  if (locator && !locator.problem && locator.areaOffset >= h.dataOffset + BigInt(dump_page.size)) {
    const endOffset = locator.areaOffset - BigInt(dump_page.size);
    const buf = new Uint8Array(dump_page.size);
    if (src.readAt(buf, endOffset) === buf.length) {
      const dp = dump_page.decode(viewOf(buf), 0);
      if ((dp.dp_flags & DUMP_DH_END) !== 0 && !endRecordProblem(src, endOffset, dp)) {
        return { header: h.header, end: locator.areaOffset + locator.areaLen, endOffset, truncated: (dp.dp_flags & DUMP_DH_TRUNCATED) !== 0 };
      }
    }
  }
  // No sound locator (or its END is altered): walk. The source stays the caller's.
  const view: DumpSource = { path: src.path, size: src.size, base: src.base, readAt: (o, p) => src.readAt(o, p), close: () => undefined };
  const dump = LkcdDump.probe(view, { mode: 'salvage' })!;
  try {
    let endOffset: bigint;
    try {
      endOffset = dump.endOffset;
    } catch (e) {
      throw e instanceof DumpError ? e : new InternalError(String(e));
    }
    return { header: h.header, end: dump.extent, endOffset, truncated: dump.attrs['dump.truncated'] };
  } finally {
    dump.close();
  }
}
