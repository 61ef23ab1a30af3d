/**
 * The saved LKCD dump file (`dump.N`), formats v8 and v9, read the way
 * crash (lkcd_v8.c: lkcd_dump_init_v8) and libkdumpfile (lkcd.c) read it:
 *
 *   offset 0                 dump_header (v8: 734 bytes, v9: 742)
 *   offset dh_header_size    dump_header_asm (x86_64, 6336 bytes)
 *   first page record        v8: LKCD_OFFSET_TO_FIRST_PAGE (64 KiB); v9: dh_dump_buffer_size
 *   page records             { dump_page, dp_size bytes }, back to back, any PFN order
 *   end record               dump_page with DUMP_DH_END (optionally | DUMP_DH_TRUNCATED), dp_size 0
 *   optional trailer         ours: "LKCDMISS", count, crc32, count x { start_pfn, end_pfn }
 *   padding                  anything (the kernel fills the last buffer with 'm')
 *
 * Opening walks the page records once and keeps a PFN -> record index; the
 * walk is bounded by the file size, and nothing is sized from a header value
 * before that value is checked against the file and the page size.
 */
import zlib from 'node:zlib';
import {
  CorruptDumpError, DumpError, FaultError, InternalError, TruncatedError, bytes, defineStruct, hex, u32, u64,
  viewOf, type Where,
} from '../../codec/index.js';
import { PAGE_SHIFT, PAGE_SIZE } from '../../machine/index.js';
import {
  DUMP_COMPRESS_NAMES, DUMP_COMPRESS_NONE, isDumpCompress, makePageCodec, type DumpCompress, type PageCodec,
} from '../codecs/index.js';
import {
  DUMP_ASM_MAGIC_NUMBER, DUMP_DH_COMPRESSED, DUMP_DH_END, DUMP_DH_RAW, DUMP_DH_TRUNCATED, DUMP_MAGIC_LIVE,
  DUMP_MAGIC_NUMBER,
} from '../lkcd/constants.js';
import { dump_header, dump_header_v8, type DumpHeader } from '../lkcd/dump_header.js';
import { dump_header_asm, type DumpHeaderAsm } from '../lkcd/dump_header_asm.js';
import { dump_page, type DumpPage } from '../lkcd/dump_page.js';
import {
  closeDumpFile, openDumpFile, readDumpFileAt, type DumpAttributes, type DumpCompressionName, type DumpFile, type DumpFormatOps, type ProbedDump,
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
/** The flags an end record may carry. */
const END_FLAGS_ALLOWED = DUMP_DH_END | DUMP_DH_TRUNCATED;

export { dump_header_v8, type DumpHeaderV8 } from '../lkcd/dump_header.js';

// ---- the missing-ranges trailer (our extension) ----------------------------------------

/** ASCII magic of the trailer after the end record that lists PFN ranges the dump lacks. */
export const LKCD_MISSING_TRAILER_MAGIC = 'LKCDMISS';

/** Trailer header: magic, range count, zlib crc32 of the ranges' bytes. */
export const lkcd_missing_trailer = defineStruct('lkcd_missing_trailer', {
  magic: bytes(LKCD_MISSING_TRAILER_MAGIC.length),
  count: u32,
  crc32: u32,
});

/** One missing range: PFNs [start_pfn, end_pfn). */
export const lkcd_missing_range = defineStruct('lkcd_missing_range', {
  start_pfn: u64,
  end_pfn: u64,
});

/** Encodes the trailer for `ranges` ([start, end) PFN pairs). */
export function encodeLkcdMissingTrailer(ranges: ReadonlyArray<readonly [bigint, bigint]>): Uint8Array {
  const out = new Uint8Array(lkcd_missing_trailer.size + ranges.length * lkcd_missing_range.size);
  const view = viewOf(out);
  ranges.forEach(([start_pfn, end_pfn], i) => {
    lkcd_missing_range.encode({ start_pfn, end_pfn }, view, lkcd_missing_trailer.size + i * lkcd_missing_range.size);
  });
  lkcd_missing_trailer.encode({
    magic: Buffer.from(LKCD_MISSING_TRAILER_MAGIC, 'latin1'),
    count: ranges.length,
    crc32: zlib.crc32(out.subarray(lkcd_missing_trailer.size)) >>> 0,
  }, view, 0);
  return out;
}

// ---- public types --------------------------------------------------------------------

/** Where one page lives in the file: its dump_page header's offset, dp_size and dp_flags. */
export interface LkcdPageRecord {
  offset: bigint;
  size: number;
  flags: number;
}

/** Finds a page's record without walking the file (e.g. from the SQLite index); null: not saved. */
export type LkcdIndexLookup = (pfn: bigint) => LkcdPageRecord | null;

export interface LkcdOpenOptions {
  /** Replaces the walk: readPage() asks this, and checks the record header it points at. */
  index?: LkcdIndexLookup;
  /**
   * With `index`: offset of the end record, so dump.truncated and the
   * trailer are read without a walk. Without it they walk the file on
   * first use.
   */
  endOffset?: bigint;
  /** Called during the walk with bytes walked and the file size. */
  onProgress?: (doneBytes: bigint, totalBytes: bigint) => void;
}

export interface LkcdBadPage {
  /** PFN of the record, or null for a problem that is not one page's (no end record, a broken trailer). */
  pfn: bigint | null;
  /** Offset of the record (or of the structure that is broken). */
  offset: bigint;
  error: DumpError;
}

export interface LkcdVerifyResult {
  /** Page records seen. */
  pages: number;
  compressed: number;
  raw: number;
  bad: LkcdBadPage[];
  /** The end record carries DUMP_DH_TRUNCATED. */
  truncated: boolean;
  /** Offset of the end record, or null when there is none. */
  endOffset: bigint | null;
  missingRanges: Array<[bigint, bigint]>;
}

// ---- header ----------------------------------------------------------------------------

/** Everything taken from the two headers, checked. */
interface LkcdHeaders {
  version: number;
  /** The header in v9 shape; a v8 header gets dh_dump_buffer_size = LKCD_OFFSET_TO_FIRST_PAGE. */
  header: DumpHeader;
  asm: DumpHeaderAsm;
  pageSize: number;
  compress: DumpCompress;
  dataOffset: bigint;
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
    const offset = err.where.offset === undefined ? base : base + BigInt(err.where.offset);
    return new DumpError(err.code, err.message, { ...err.where, file: file.path, offset }, { cause: err });
  }
  return err;
}

function headerWhere(file: DumpFile, field: keyof DumpHeader): Where {
  return { file: file.path, struct: 'dump_header', field, offset: BigInt(dump_header.offsetOf[field]) };
}

/**
 * Reads and checks both headers. Returns null when the magic is not an
 * LKCD one in either byte order ("not mine"); throws for an LKCD file that
 * is broken or that this reader does not support.
 */
function readHeaders(file: DumpFile): LkcdHeaders | null {
  const headLen = dump_header.size + dump_header_asm.size;
  const head = new Uint8Array(Number(file.size < BigInt(headLen) ? file.size : BigInt(headLen)));
  const got = readDumpFileAt(file, head, 0n);
  const view = viewOf(head.subarray(0, got));
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
  if (!isDumpCompress(compress)) {
    throw new DumpError('UNSUPPORTED', `unknown dump compression ${compress} (dh_dump_compress)`,
      headerWhere(file, 'dh_dump_compress'));
  }

  let asm: DumpHeaderAsm;
  try {
    asm = dump_header_asm.decode(view, header.dh_header_size);
  } catch (e) {
    throw inFile(e, file, 0n);
  }
  const asmWhere = (field: keyof DumpHeaderAsm): Where => ({
    file: file.path, struct: 'dump_header_asm', field,
    offset: BigInt(header.dh_header_size + dump_header_asm.offsetOf[field]),
  });
  if (asm.dha_magic_number !== DUMP_ASM_MAGIC_NUMBER) {
    throw new CorruptDumpError(`invalid magic number ${hex(asm.dha_magic_number)} for the x86_64 arch header`,
      asmWhere('dha_magic_number'));
  }
  if (asm.dha_header_size !== dump_header_asm.size) {
    throw new DumpError('UNSUPPORTED',
      `x86_64 arch header of ${asm.dha_header_size} bytes: only ${dump_header_asm.size} (32 CPUs) is read (dha_header_size)`,
      asmWhere('dha_header_size'));
  }

  const dataOffset = header.dh_dump_buffer_size;
  const headersEnd = BigInt(header.dh_header_size + dump_header_asm.size);
  if (dataOffset < headersEnd || dataOffset % BigInt(pageSize) !== 0n) {
    throw new CorruptDumpError(
      `dh_dump_buffer_size ${hex(dataOffset)} is not a page-aligned offset past the headers (which end at ${hex(headersEnd)})`,
      headerWhere(file, 'dh_dump_buffer_size'));
  }
  if (dataOffset > file.size) {
    throw new TruncatedError(
      `file of ${hex(file.size)} bytes ends before the first page record at offset ${hex(dataOffset)}`,
      { file: file.path, offset: dataOffset, struct: 'dump_page' });
  }
  return { version, header, asm, pageSize, compress, dataOffset };
}

// ---- sequential reading ------------------------------------------------------------------

/** Window reads for a front-to-back walk: one read() per MiB instead of two per record. */
class WindowReader {
  private buf = new Uint8Array(1 << 20);
  private start = 0n;
  private len = 0;

  constructor(private readonly file: DumpFile) {}

  /** Up to `n` bytes at `offset` (fewer at the end of the file); valid until the next call. */
  read(offset: bigint, n: number): Uint8Array {
    if (offset >= this.start && offset + BigInt(n) <= this.start + BigInt(this.len)) {
      const at = Number(offset - this.start);
      return this.buf.subarray(at, at + n);
    }
    if (n > this.buf.length) this.buf = new Uint8Array(n);
    this.len = readDumpFileAt(this.file, this.buf, offset);
    this.start = offset;
    return this.buf.subarray(0, Math.min(n, this.len));
  }
}

interface RecordStep {
  offset: bigint;
  dp: DumpPage;
}

/**
 * Yields each record header from `dataOffset` up to and including the end
 * record. Throws TruncatedError when the file ends inside a record, or where
 * a record should start (no end record). A record's data is checked to lie
 * inside the file only when the consumer asks for the next record, so a
 * consumer must not read the data of a record whose header it rejected.
 */
function* walkRecords(file: DumpFile, reader: WindowReader, dataOffset: bigint): Generator<RecordStep> {
  let offset = dataOffset;
  for (;;) {
    if (offset === file.size) {
      throw new TruncatedError(`no end record: the file ends at offset ${hex(offset)} where a page record should start`,
        { file: file.path, offset, struct: 'dump_page', field: 'dp_flags' });
    }
    const bytesAt = reader.read(offset, dump_page.size);
    let dp: DumpPage;
    try {
      dp = dump_page.decode(viewOf(bytesAt), 0);
    } catch (e) {
      throw inFile(e, file, offset);
    }
    if (dp.dp_flags & DUMP_DH_END) {
      yield { offset, dp };
      return;
    }
    // The consumer checks the header first: a dp_size that is corrupt is reported as such,
    // not as a file cut short.
    yield { offset, dp };
    const dataEnd = offset + BigInt(dump_page.size) + BigInt(dp.dp_size);
    if (dataEnd > file.size) {
      throw new TruncatedError(
        `file ends at ${hex(file.size)} inside the page data of the record at offset ${hex(offset)} (dp_size ${dp.dp_size})`,
        { file: file.path, offset: offset + BigInt(dump_page.offsetOf.dp_size), struct: 'dump_page', field: 'dp_size' });
    }
    offset = dataEnd;
  }
}

function recordWhere(file: DumpFile, offset: bigint, field: keyof DumpPage): Where {
  return { file: file.path, struct: 'dump_page', field, offset: offset + BigInt(dump_page.offsetOf[field]) };
}

/**
 * The checks a page record must pass before its data is read: the end
 * record, then dp_flags, dp_address and dp_size of a page (crash
 * lkcd_v8.c, libkdumpfile lkcd_read_page(), stage 2's dph_valid()).
 */
function recordProblem(file: DumpFile, offset: bigint, dp: DumpPage, pageSize: number, compress: DumpCompress): DumpError | null {
  if (dp.dp_flags & DUMP_DH_END) {
    if ((dp.dp_flags & ~END_FLAGS_ALLOWED) !== 0) {
      return new CorruptDumpError(`end record has dp_flags ${hex(dp.dp_flags)}: only DUMP_DH_END and DUMP_DH_TRUNCATED may be set`,
        recordWhere(file, offset, 'dp_flags'));
    }
    if (dp.dp_size !== 0) {
      return new CorruptDumpError(`end record has dp_size ${dp.dp_size}, expected 0`, recordWhere(file, offset, 'dp_size'));
    }
    return null;
  }
  if (dp.dp_flags !== DUMP_DH_RAW && dp.dp_flags !== DUMP_DH_COMPRESSED) {
    return new CorruptDumpError(`unknown page flags dp_flags ${hex(dp.dp_flags)}: expected DUMP_DH_RAW or DUMP_DH_COMPRESSED`,
      recordWhere(file, offset, 'dp_flags'));
  }
  if (dp.dp_address % BigInt(pageSize) !== 0n) {
    return new CorruptDumpError(`dp_address ${hex(dp.dp_address)} is not page aligned`, recordWhere(file, offset, 'dp_address'));
  }
  if (dp.dp_size > pageSize) {
    return new CorruptDumpError(`dp_size ${dp.dp_size} exceeds page size ${pageSize}`, recordWhere(file, offset, 'dp_size'));
  }
  if (dp.dp_flags === DUMP_DH_RAW && dp.dp_size !== pageSize) {
    return new CorruptDumpError(`raw page has dp_size ${dp.dp_size}, expected the page size ${pageSize}`,
      recordWhere(file, offset, 'dp_size'));
  }
  if (dp.dp_flags === DUMP_DH_COMPRESSED) {
    if (compress === DUMP_COMPRESS_NONE) {
      return new CorruptDumpError('page is DUMP_DH_COMPRESSED but the dump\'s compression is none',
        recordWhere(file, offset, 'dp_flags'));
    }
    if (dp.dp_size === 0) {
      return new CorruptDumpError('compressed page has dp_size 0', recordWhere(file, offset, 'dp_size'));
    }
  }
  return null;
}

function duplicateError(file: DumpFile, offset: bigint, pfn: number, previous: bigint): CorruptDumpError {
  return new CorruptDumpError(`duplicate PFN ${hex(pfn)} (previous record at offset ${hex(previous)})`,
    recordWhere(file, offset, 'dp_address'));
}

/** Reads the optional trailer after the end record at `endOffset`; [] when there is none. */
function readTrailer(file: DumpFile, endOffset: bigint): Array<[bigint, bigint]> {
  const at = endOffset + BigInt(dump_page.size);
  const avail = file.size - at;
  if (avail < BigInt(LKCD_MISSING_TRAILER_MAGIC.length)) return [];
  const hdr = new Uint8Array(Number(avail < BigInt(lkcd_missing_trailer.size) ? avail : BigInt(lkcd_missing_trailer.size)));
  readDumpFileAt(file, hdr, at);
  if (Buffer.from(hdr.subarray(0, LKCD_MISSING_TRAILER_MAGIC.length)).toString('latin1') !== LKCD_MISSING_TRAILER_MAGIC) return [];
  const where = (field: string, extra = 0n): Where => ({
    file: file.path, struct: 'lkcd_missing_trailer', field,
    offset: at + extra + BigInt(field in lkcd_missing_trailer.offsetOf
      ? lkcd_missing_trailer.offsetOf[field as keyof typeof lkcd_missing_trailer.offsetOf] : 0),
  });
  if (hdr.length < lkcd_missing_trailer.size) {
    throw new CorruptDumpError(`missing-ranges trailer is cut short: ${hdr.length} of ${lkcd_missing_trailer.size} header bytes`,
      where('count'));
  }
  const t = lkcd_missing_trailer.decode(viewOf(hdr), 0);
  const room = avail - BigInt(lkcd_missing_trailer.size);
  const need = BigInt(t.count) * BigInt(lkcd_missing_range.size);
  if (need > room) {
    throw new CorruptDumpError(`missing-ranges trailer claims ${t.count} ranges (${need} bytes) but ${room} bytes follow it`,
      where('count'));
  }
  const body = new Uint8Array(Number(need));
  readDumpFileAt(file, body, at + BigInt(lkcd_missing_trailer.size));
  const crc = zlib.crc32(body) >>> 0;
  if (crc !== t.crc32) {
    throw new CorruptDumpError(`missing-ranges trailer crc32 ${hex(t.crc32)} does not match its ranges (${hex(crc)})`,
      where('crc32'));
  }
  const view = viewOf(body);
  const out: Array<[bigint, bigint]> = [];
  for (let i = 0; i < t.count; i++) {
    const r = lkcd_missing_range.decode(view, i * lkcd_missing_range.size);
    if (r.start_pfn >= r.end_pfn) {
      throw new CorruptDumpError(`missing range ${i} [${hex(r.start_pfn)}, ${hex(r.end_pfn)}) is empty or reversed`, {
        file: file.path, struct: 'lkcd_missing_range', field: 'end_pfn',
        offset: at + BigInt(lkcd_missing_trailer.size + i * lkcd_missing_range.size + lkcd_missing_range.offsetOf.end_pfn),
      });
    }
    out.push([r.start_pfn, r.end_pfn]);
  }
  return out;
}

// ---- the index -------------------------------------------------------------------------

/** PFN -> record, in typed arrays grown by doubling (never sized from a header value). */
class RecordTable {
  count = 0;
  private pfn = new Float64Array(1024);
  private offset = new Float64Array(1024);
  private size = new Uint32Array(1024);
  private flags = new Uint8Array(1024);
  private readonly byPfn = new Map<number, number>();

  /** Index of the record already holding `pfn`, or -1. */
  find(pfn: number): number {
    return this.byPfn.get(pfn) ?? -1;
  }

  add(pfn: number, offset: bigint, size: number, flags: number): void {
    if (this.count === this.pfn.length) {
      const grow = <T extends Float64Array | Uint32Array | Uint8Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.pfn = grow(this.pfn);
      this.offset = grow(this.offset);
      this.size = grow(this.size);
      this.flags = grow(this.flags);
    }
    const i = this.count++;
    this.pfn[i] = pfn;
    this.offset[i] = Number(offset);
    this.size[i] = size;
    this.flags[i] = flags;
    this.byPfn.set(pfn, i);
  }

  record(i: number): LkcdPageRecord {
    return { offset: BigInt(this.offset[i]), size: this.size[i], flags: this.flags[i] };
  }

  pfnAt(i: number): number {
    return this.pfn[i];
  }
}

/** dp_address >> PAGE_SHIFT is always below this, so every PFN of a record is a safe integer. */
const PFN_LIMIT = 1n << BigInt(64 - PAGE_SHIFT);

// ---- the dump ----------------------------------------------------------------------------

/** An open LKCD dump file. */
export class LkcdDump implements ProbedDump {
  readonly attrs: DumpAttributes;
  private table: RecordTable | null = null;
  private end: { offset: bigint; truncated: boolean } | null = null;
  private missing: Array<[bigint, bigint]> | null = null;
  private readonly codec: PageCodec;
  private readonly scratch: Uint8Array;
  private closed = false;

  private constructor(
    readonly file: DumpFile,
    private readonly h: LkcdHeaders,
    private readonly opts: LkcdOpenOptions,
  ) {
    this.codec = makePageCodec(h.compress);
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
      'linux.uts.release': header.dh_utsname_release,
      'linux.uts.nodename': header.dh_utsname_nodename,
      'linux.uts.version': header.dh_utsname_version,
      'linux.uts.machine': header.dh_utsname_machine,
      'crash.current_task': header.dh_current_task,
      'crash.regs': h.asm.dha_regs,
      'dump.data_offset': h.dataOffset,
      'dump.truncated': false,
    };
    if (this.lazyEnd) {
      // Only the end record knows; find it when someone asks.
      Object.defineProperty(attrs, 'dump.truncated', { enumerable: true, get: () => this.endRecord().truncated });
    }
    this.attrs = attrs;
  }

  /** Opens the dump in `file` (which it then owns), or returns null when `file` is not LKCD. */
  static probe(file: DumpFile, opts: LkcdOpenOptions = {}): LkcdDump | null {
    const h = readHeaders(file);
    if (!h) return null;
    const dump = new LkcdDump(file, h, opts);
    try {
      if (opts.index) {
        if (opts.endOffset !== undefined) dump.readEndAt(opts.endOffset);
      } else {
        dump.walk();
      }
    } catch (e) {
      dump.codec.close();
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

  get dataOffset(): bigint {
    return this.h.dataOffset;
  }

  /** Offset of the end record (walks the file if an index replaced the walk). */
  get endOffset(): bigint {
    return this.endRecord().offset;
  }

  private live(): void {
    if (this.closed) throw new InternalError(`LKCD dump ${this.file.path} used after close()`);
  }

  private walk(): RecordTable {
    if (this.table) return this.table;
    const { file, h } = this;
    const table = new RecordTable();
    const reader = new WindowReader(file);
    let n = 0;
    for (const { offset, dp } of walkRecords(file, reader, h.dataOffset)) {
      const problem = recordProblem(file, offset, dp, h.pageSize, h.compress);
      if (problem) throw problem;
      if (dp.dp_flags & DUMP_DH_END) {
        this.setEnd(offset, dp);
        break;
      }
      const pfn = Number(dp.dp_address >> BigInt(PAGE_SHIFT));
      const prev = table.find(pfn);
      if (prev >= 0) throw duplicateError(file, offset, pfn, table.record(prev).offset);
      table.add(pfn, offset, dp.dp_size, dp.dp_flags);
      if (++n % 4096 === 0) this.opts.onProgress?.(offset, file.size);
    }
    this.opts.onProgress?.(file.size, file.size);
    this.table = table;
    if (!this.opts.index) this.attrs['dump.pages'] = table.count;
    this.missing = readTrailer(file, this.end!.offset);
    return table;
  }

  /** Reads the end record at `offset` (given by the caller's index) and the trailer after it. */
  private readEndAt(offset: bigint): void {
    const { file } = this;
    const buf = new Uint8Array(dump_page.size);
    if (offset < this.h.dataOffset || readDumpFileAt(file, buf, offset) < dump_page.size) {
      throw new TruncatedError(`no end record at offset ${hex(offset)}`, { file: file.path, offset, struct: 'dump_page', field: 'dp_flags' });
    }
    const dp = dump_page.decode(viewOf(buf), 0);
    if (!(dp.dp_flags & DUMP_DH_END)) {
      throw new CorruptDumpError(`the record at offset ${hex(offset)} is not the end record (dp_flags ${hex(dp.dp_flags)})`,
        recordWhere(file, offset, 'dp_flags'));
    }
    const problem = recordProblem(file, offset, dp, this.h.pageSize, this.h.compress);
    if (problem) throw problem;
    this.setEnd(offset, dp);
    this.missing = readTrailer(file, offset);
  }

  private setEnd(offset: bigint, dp: DumpPage): void {
    this.end = { offset, truncated: (dp.dp_flags & DUMP_DH_TRUNCATED) !== 0 };
    if (!this.lazyEnd) this.attrs['dump.truncated'] = this.end.truncated;
  }

  /** An index replaced the walk and gave no end offset: dump.truncated is a getter that walks. */
  private get lazyEnd(): boolean {
    return this.opts.index !== undefined && this.opts.endOffset === undefined;
  }

  private endRecord(): { offset: bigint; truncated: boolean } {
    if (!this.end) this.walk();
    return this.end!;
  }

  /** Ranges [start_pfn, end_pfn) the trailer lists as missing; empty when there is no trailer. */
  missingRanges(): Array<[bigint, bigint]> {
    this.live();
    this.endRecord();
    return this.missing!.map(([a, b]) => [a, b]);
  }

  /** Where `pfn` is stored, or null when the dump does not hold it. */
  record(pfn: bigint): LkcdPageRecord | null {
    this.live();
    if (pfn < 0n || pfn >= PFN_LIMIT) return null;
    if (this.opts.index && !this.table) return this.checkedIndexRecord(pfn);
    const table = this.walk();
    const i = table.find(Number(pfn));
    return i < 0 ? null : table.record(i);
  }

  /** The caller's index entry for `pfn`, checked against the record header it points at. */
  private checkedIndexRecord(pfn: bigint): LkcdPageRecord | null {
    const rec = this.opts.index!(pfn);
    if (!rec) return null;
    const { file } = this;
    const hdr = this.scratch.subarray(0, dump_page.size);
    if (rec.offset < this.h.dataOffset || readDumpFileAt(file, hdr, rec.offset) < dump_page.size) {
      throw new TruncatedError(`index points PFN ${hex(pfn)} at offset ${hex(rec.offset)}, outside the page records`,
        { file: file.path, offset: rec.offset, struct: 'dump_page' });
    }
    const dp = dump_page.decode(viewOf(hdr), 0);
    if (dp.dp_address !== pfn << BigInt(PAGE_SHIFT) || dp.dp_size !== rec.size || dp.dp_flags !== rec.flags) {
      throw new CorruptDumpError(
        `index entry for PFN ${hex(pfn)} (size ${rec.size}, flags ${hex(rec.flags)}) disagrees with the record at offset ` +
        `${hex(rec.offset)} (dp_address ${hex(dp.dp_address)}, dp_size ${dp.dp_size}, dp_flags ${hex(dp.dp_flags)})`,
        recordWhere(file, rec.offset, 'dp_address'));
    }
    const problem = recordProblem(file, rec.offset, dp, this.h.pageSize, this.h.compress);
    if (problem) throw problem;
    if (rec.offset + BigInt(dump_page.size + rec.size) > file.size) {
      throw new TruncatedError(`file ends inside the page data of the record at offset ${hex(rec.offset)}`,
        recordWhere(file, rec.offset, 'dp_size'));
    }
    return rec;
  }

  readPage(pfn: bigint): Uint8Array {
    const rec = this.record(pfn);
    const address = pfn << BigInt(PAGE_SHIFT);
    if (!rec) {
      throw new FaultError(`PFN ${hex(pfn)} (physical address ${hex(address)}) is not in the dump`,
        { file: this.file.path, address, space: 'phys' });
    }
    const data = this.scratch.subarray(0, rec.size);
    const dataOffset = rec.offset + BigInt(dump_page.size);
    if (readDumpFileAt(this.file, data, dataOffset) < rec.size) {
      throw new TruncatedError(`file ends inside the page data of PFN ${hex(pfn)}`, recordWhere(this.file, rec.offset, 'dp_size'));
    }
    return decodeRecord(this.file, this.codec, pfn, rec, data, new Uint8Array(this.h.pageSize));
  }

  *pages(): Iterable<bigint> {
    this.live();
    const table = this.walk();
    for (let i = 0; i < table.count; i++) yield BigInt(table.pfnAt(i));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.codec.close();
    closeDumpFile(this.file);
  }
}

/** Decompresses one record's data into `out`, naming the PFN and the record's offset on failure. */
function decodeRecord(
  file: DumpFile, codec: PageCodec, pfn: bigint, rec: LkcdPageRecord, data: Uint8Array, out: Uint8Array,
): Uint8Array {
  try {
    return codec.decode(rec.flags, data, out);
  } catch (e) {
    if (e instanceof DumpError && e.code !== 'INTERNAL') {
      const field = (e.where.field as keyof DumpPage | undefined) ?? 'dp_size';
      throw new DumpError(e.code, `page data of PFN ${hex(pfn)}: ${e.message}`,
        recordWhere(file, rec.offset, field in dump_page.offsetOf ? field : 'dp_size'), { cause: e });
    }
    throw e;
  }
}

// ---- entry points -----------------------------------------------------------------------

/** The format-table entry (src/dump/formats/index.ts). */
export const lkcdFormat: DumpFormatOps = {
  name: 'lkcd',
  probe: (file) => LkcdDump.probe(file),
};

/**
 * Opens `path` as an LKCD dump. With `opts.index` no walk is done: pages
 * are found through the index (random reads only), each checked against
 * the record header it points at.
 */
export function openLkcdFile(path: string, opts: LkcdOpenOptions = {}): LkcdDump {
  const file = openDumpFile(path);
  let dump: LkcdDump | null;
  try {
    dump = LkcdDump.probe(file, opts);
  } catch (e) {
    closeDumpFile(file);
    throw e;
  }
  if (!dump) {
    closeDumpFile(file);
    throw new DumpError('UNSUPPORTED', `${path}: not an LKCD dump (no DUMP_MAGIC_NUMBER at offset 0)`,
      { file: path, struct: 'dump_header', field: 'dh_magic_number', offset: 0n });
  }
  return dump;
}

/** Closes a dump opened by openLkcdFile. */
export function closeLkcdFile(dump: LkcdDump): void {
  dump.close();
}

/**
 * Checks every record of the LKCD dump at `path` and decompresses every
 * page to exactly one page. Problems with single pages are collected, not
 * thrown, so one flipped bit is reported with its PFN and offset and the
 * check goes on; a structural end (file cut short, no end record, broken
 * trailer) is the last entry. A broken header is thrown.
 */
export function verifyLkcd(path: string, onProgress?: (doneBytes: bigint, totalBytes: bigint) => void): LkcdVerifyResult {
  const file = openDumpFile(path);
  try {
    const h = readHeaders(file);
    if (!h) {
      throw new DumpError('UNSUPPORTED', `${path}: not an LKCD dump (no DUMP_MAGIC_NUMBER at offset 0)`,
        { file: path, struct: 'dump_header', field: 'dh_magic_number', offset: 0n });
    }
    const codec = makePageCodec(h.compress);
    const result: LkcdVerifyResult = {
      pages: 0, compressed: 0, raw: 0, bad: [], truncated: false, endOffset: null, missingRanges: [],
    };
    const seen = new Map<number, bigint>();
    const out = new Uint8Array(h.pageSize);
    const reader = new WindowReader(file);
    try {
      for (const { offset, dp } of walkRecords(file, reader, h.dataOffset)) {
        if (dp.dp_flags & DUMP_DH_END) {
          const problem = recordProblem(file, offset, dp, h.pageSize, h.compress);
          if (problem) result.bad.push({ pfn: null, offset, error: problem });
          result.endOffset = offset;
          result.truncated = (dp.dp_flags & DUMP_DH_TRUNCATED) !== 0;
          break;
        }
        result.pages++;
        const pfnBig = dp.dp_address >> BigInt(PAGE_SHIFT);
        const pfn = Number(pfnBig);
        const problem = recordProblem(file, offset, dp, h.pageSize, h.compress);
        if (problem) {
          result.bad.push({ pfn: pfnBig, offset, error: problem });
          continue;
        }
        if (dp.dp_flags === DUMP_DH_COMPRESSED) result.compressed++;
        else result.raw++;
        const prev = seen.get(pfn);
        if (prev !== undefined) {
          result.bad.push({ pfn: pfnBig, offset, error: duplicateError(file, offset, pfn, prev) });
          continue;
        }
        seen.set(pfn, offset);
        // Data cut off by the end of the file: the walk reports that as its structural end.
        if (offset + BigInt(dump_page.size + dp.dp_size) > file.size) continue;
        const data = reader.read(offset + BigInt(dump_page.size), dp.dp_size);
        try {
          decodeRecord(file, codec, pfnBig, { offset, size: dp.dp_size, flags: dp.dp_flags }, data, out);
        } catch (e) {
          if (!(e instanceof DumpError) || e.code === 'INTERNAL') throw e;
          result.bad.push({ pfn: pfnBig, offset, error: e });
        }
        if (result.pages % 1024 === 0) onProgress?.(offset, file.size);
      }
      if (result.endOffset !== null) result.missingRanges = readTrailer(file, result.endOffset);
    } catch (e) {
      if (!(e instanceof DumpError) || e.code === 'INTERNAL') throw e;
      result.bad.push({ pfn: null, offset: BigInt(e.where.offset ?? 0), error: e });
    } finally {
      codec.close();
    }
    onProgress?.(file.size, file.size);
    return result;
  } finally {
    closeDumpFile(file);
  }
}
