/**
 * The one walker over LKCD page records, for every place that reads them:
 * the dump file and its verification, the dump device, stage 2 reading the
 * memdev stage 1 left in RAM, and the in-place reader. Each record is
 * checked as crash (lkcd_v8.c), libkdumpfile (lkcd_read_page()) and LKCD's
 * own stage 2 (dph_valid()) check it, plus: no PFN twice, no PFN at or
 * beyond dh_memory_size. Every step moves forward by at least a record
 * header and never past `limit`, so the walk is bounded by the source.
 *
 * When the caller knows what each record must be (the checksums after the
 * END record, or stage 1's record table in RAM), those expectations frame
 * the walk: a record whose header or data was altered is named by the PFN
 * it should have, and the walk goes on at the next record, whatever its
 * damaged header says.
 */
import { CorruptDumpError, DumpError, TruncatedError, hex, viewOf, type Where } from '../../codec/index.js';
import { PAGE_SHIFT } from '../../machine/index.js';
import { DUMP_COMPRESS_NONE, recordCrc32s, type DumpCompress } from '../codecs/index.js';
import { DUMP_DH_COMPRESSED, DUMP_DH_END, DUMP_DH_RAW, DUMP_DH_TRUNCATED } from '../lkcd/constants.js';
import { dump_page, type DumpPage } from '../lkcd/dump_page.js';
import { placeOf, type DumpSource } from './types.js';

/** The flags an end record may carry. */
const END_FLAGS_ALLOWED = DUMP_DH_END | DUMP_DH_TRUNCATED;
const PAGE_SHIFT_N = BigInt(PAGE_SHIFT);

/** What a record must respect, from the dump's header. */
export interface RecordLimits {
  pageSize: number;
  compress: DumpCompress;
  /** dh_memory_size (pages of RAM): a record at or beyond it is corrupt. 0: not known, not checked. */
  memoryPages: bigint;
}

export function recordWhere(src: DumpSource, offset: bigint, field: keyof DumpPage): Where {
  return { file: src.path, struct: 'dump_page', field, offset: placeOf(src, offset + BigInt(dump_page.offsetOf[field])) };
}

/** The checks of an END record: only DUMP_DH_END and DUMP_DH_TRUNCATED, dp_size 0. */
export function endRecordProblem(src: DumpSource, offset: bigint, dp: DumpPage): DumpError | null {
  if ((dp.dp_flags & DUMP_DH_END) === 0) {
    return new CorruptDumpError(`the record at offset ${hex(placeOf(src, offset))} is not the end record (dp_flags ${hex(dp.dp_flags)})`,
      recordWhere(src, offset, 'dp_flags'));
  }
  if ((dp.dp_flags & ~END_FLAGS_ALLOWED) !== 0) {
    return new CorruptDumpError(`end record has dp_flags ${hex(dp.dp_flags)}: only DUMP_DH_END and DUMP_DH_TRUNCATED may be set`,
      recordWhere(src, offset, 'dp_flags'));
  }
  if (dp.dp_size !== 0) {
    return new CorruptDumpError(`end record has dp_size ${dp.dp_size}, expected 0`, recordWhere(src, offset, 'dp_size'));
  }
  return null;
}

/**
 * The checks a page record must pass before its data is read: dp_flags,
 * dp_address and dp_size (crash lkcd_v8.c, libkdumpfile lkcd_read_page(),
 * dph_valid()), and dp_address inside dh_memory_size.
 */
export function pageRecordProblem(src: DumpSource, offset: bigint, dp: DumpPage, lim: RecordLimits): DumpError | null {
  if (dp.dp_flags !== DUMP_DH_RAW && dp.dp_flags !== DUMP_DH_COMPRESSED) {
    return new CorruptDumpError(`unknown page flags dp_flags ${hex(dp.dp_flags)}: expected DUMP_DH_RAW or DUMP_DH_COMPRESSED`,
      recordWhere(src, offset, 'dp_flags'));
  }
  if (dp.dp_address % BigInt(lim.pageSize) !== 0n) {
    return new CorruptDumpError(`dp_address ${hex(dp.dp_address)} is not page aligned`, recordWhere(src, offset, 'dp_address'));
  }
  if (dp.dp_size > lim.pageSize) {
    return new CorruptDumpError(`dp_size ${dp.dp_size} exceeds page size ${lim.pageSize}`, recordWhere(src, offset, 'dp_size'));
  }
  if (dp.dp_flags === DUMP_DH_RAW && dp.dp_size !== lim.pageSize) {
    return new CorruptDumpError(`raw page has dp_size ${dp.dp_size}, expected the page size ${lim.pageSize}`,
      recordWhere(src, offset, 'dp_size'));
  }
  if (dp.dp_flags === DUMP_DH_COMPRESSED) {
    if (lim.compress === DUMP_COMPRESS_NONE) {
      return new CorruptDumpError('page is DUMP_DH_COMPRESSED but the dump\'s compression is none', recordWhere(src, offset, 'dp_flags'));
    }
    if (dp.dp_size === 0) return new CorruptDumpError('compressed page has dp_size 0', recordWhere(src, offset, 'dp_size'));
  }
  if (lim.memoryPages > 0n && dp.dp_address >> PAGE_SHIFT_N >= lim.memoryPages) {
    return new CorruptDumpError(
      `dp_address ${hex(dp.dp_address)} is beyond the ${lim.memoryPages} pages of memory the header gives (dh_memory_size)`,
      recordWhere(src, offset, 'dp_address'));
  }
  return null;
}

export function duplicateError(src: DumpSource, offset: bigint, pfn: bigint, previous: bigint | null): CorruptDumpError {
  return new CorruptDumpError(`duplicate PFN ${hex(pfn)} (${previous === null ? 'an earlier record holds it' : `previous record at offset ${hex(placeOf(src, previous))}`})`,
    recordWhere(src, offset, 'dp_address'));
}

/** The PFNs a walk has seen, for the duplicate check. */
export interface PfnSeen {
  /** Whether `pfn` was seen: the offset of its record when known, -1n when not kept, null when not seen. */
  offsetOf(pfn: number): bigint | null;
  add(pfn: number, offset: bigint): void;
}

/** Largest RAM (in pages) a bitmap is used for: 2^26 pages is 256 GiB, an 8 MiB bitmap. */
const BITMAP_PAGES_LIMIT = 1n << 26n;

/**
 * A PfnSeen sized to the dump: one bit per frame when the number of frames
 * is known and plausible (records beyond it are rejected before they get
 * here), else a map that grows with the records (each of which the source
 * had to hold).
 */
export function pfnSeen(memoryPages: bigint): PfnSeen {
  if (memoryPages > 0n && memoryPages <= BITMAP_PAGES_LIMIT) {
    const bits = new Uint8Array(Number((memoryPages + 7n) / 8n));
    return {
      offsetOf: (pfn) => (pfn >= 0 && (pfn >>> 3) < bits.length && (bits[pfn >>> 3] & (1 << (pfn & 7))) !== 0 ? -1n : null),
      add: (pfn) => { if ((pfn >>> 3) < bits.length) bits[pfn >>> 3] |= 1 << (pfn & 7); },
    };
  }
  const map = new Map<number, bigint>();
  return { offsetOf: (pfn) => map.get(pfn) ?? null, add: (pfn, offset) => { map.set(pfn, offset); } };
}

/** What the i-th record must be, when the caller knows it; flags null: not known. */
export interface ExpectedRecord {
  pfn: number;
  size: number;
  flags: number | null;
}

/** The caller's knowledge of every record, which then frames the walk. */
export interface RecordExpectations {
  /** Records it knows of (indexes 0 .. count-1 of the whole stream). */
  readonly count: number;
  /** Where the knowledge comes from, for messages ("the checksum extension", "the record table"). */
  readonly source: string;
  /** The i-th record, or null when nothing trustworthy is known of it. */
  expect(i: number): ExpectedRecord | null;
  /** Whether the i-th record's bytes are the ones recorded, from the CRC32 of its data and of the whole record. */
  check(i: number, dataCrc32: number, recordCrc32: number): boolean;
}

/** One page record. `header` and `data` are valid until the next step. */
export interface WalkedRecord {
  index: number;
  offset: bigint;
  /** The expected PFN when expectations frame the record, else dp_address's. */
  pfn: bigint;
  dp: DumpPage;
  header: Uint8Array;
  data: Uint8Array;
  /** CRC32 of the data, and of the header and data, when the walk computed them (expectations frame it), else null. */
  dataCrc32: number | null;
  recordCrc32: number | null;
  /** The failed check, or null. A record with a problem must not be trusted. */
  problem: DumpError | null;
}

/** How a walk ended: at an END record (checked), or broken by something it cannot step over. */
export interface WalkOutcome {
  end: { offset: bigint; dp: DumpPage; header: Uint8Array; problem: DumpError | null } | null;
  broken: DumpError | null;
  /** Offset where the walk stopped: the END record's, the limit, or where it broke. */
  stoppedAt: bigint;
  /** Records yielded. */
  records: number;
  /**
   * `broken` is only the source ending before an END record (at a record
   * boundary, or inside a record whose header passed its checks): the dump
   * was cut short, every record before is whole.
   */
  cutShort: boolean;
}

export interface WalkOptions {
  /** Offset of the first record. */
  start: bigint;
  /** Records must end here; default the source's size. */
  limit?: bigint;
  /** An END record ends the walk (a dump); false: the walk ends at `limit` (a memdev segment). */
  endRecord: boolean;
  /** Stream index of the first record (for expectations). */
  firstIndex?: number;
  expected?: RecordExpectations | null;
  /** PFNs seen so far, shared across walks of one dump's segments (default: pfnSeen(lim.memoryPages)). */
  seen?: PfnSeen;
  /** Filled as the walk ends. */
  outcome?: WalkOutcome;
  onProgress?: (doneBytes: bigint, totalBytes: bigint) => void;
}

/** Window reads for a front-to-back walk: one read per MiB instead of two per record. */
export class WindowReader {
  private buf = new Uint8Array(1 << 20);
  /** A view of the whole window, and where in it the last read starts (decode headers without a view each). */
  view = viewOf(this.buf);
  at = 0;
  private start = 0n;
  private len = 0;

  constructor(private readonly src: DumpSource) {}

  /** Up to `n` bytes at `offset` (fewer at the end of the source); valid until the next call. */
  read(offset: bigint, n: number): Uint8Array {
    if (offset >= this.start && offset + BigInt(n) <= this.start + BigInt(this.len)) {
      this.at = Number(offset - this.start);
      return this.buf.subarray(this.at, this.at + n);
    }
    if (n > this.buf.length) {
      this.buf = new Uint8Array(n);
      this.view = viewOf(this.buf);
    }
    this.len = this.src.readAt(this.buf, offset);
    this.start = offset;
    this.at = 0;
    return this.buf.subarray(0, Math.min(n, this.len));
  }
}

/**
 * Walks the page records from `opts.start`. Yields every page record with
 * its problem (if any); ends at the END record, at `limit`, or where a
 * record cannot be framed (its size is unknown and its header is broken).
 * `opts.outcome` says which.
 */
export function* walkLkcdRecords(src: DumpSource, lim: RecordLimits, opts: WalkOptions): Generator<WalkedRecord> {
  const limit = opts.limit !== undefined && opts.limit < src.size ? opts.limit : src.size;
  const out: WalkOutcome = opts.outcome ?? { end: null, broken: null, stoppedAt: opts.start, records: 0, cutShort: false };
  out.end = null;
  out.broken = null;
  out.records = 0;
  out.cutShort = false;
  const reader = new WindowReader(src);
  const crcs = new Uint32Array(2);
  const seen = opts.seen ?? pfnSeen(lim.memoryPages);
  const exp = opts.expected ?? null;
  let offset = opts.start;
  let index = opts.firstIndex ?? 0;
  const stop = (at: bigint, broken: DumpError | null, cutShort = false): void => {
    out.stoppedAt = at;
    out.broken = broken;
    out.cutShort = cutShort && opts.endRecord && limit === src.size;
  };
  for (;;) {
    if (!opts.endRecord && offset === limit) { stop(offset, null); return; }
    if (offset + BigInt(dump_page.size) > limit) {
      const err = offset >= limit
        ? (opts.endRecord
          ? new TruncatedError(`no end record: the dump ends at offset ${hex(placeOf(src, offset))} where a page record should start`,
            { file: src.path, offset: placeOf(src, offset), struct: 'dump_page', field: 'dp_flags' })
          : new CorruptDumpError(`page records run past the end of their segment at ${hex(placeOf(src, limit))}`,
            { file: src.path, offset: placeOf(src, offset), struct: 'dump_page' }))
        : new TruncatedError(`dump_page.dp_address: the dump ends inside the record header at offset ${hex(placeOf(src, offset))}`,
          { file: src.path, offset: placeOf(src, offset), struct: 'dump_page', field: 'dp_address' });
      stop(offset, err, true);
      return;
    }
    const header = reader.read(offset, dump_page.size);
    if (header.length < dump_page.size) {
      stop(offset, new TruncatedError(`the dump ends inside the record header at offset ${hex(placeOf(src, offset))}`,
        { file: src.path, offset: placeOf(src, offset), struct: 'dump_page', field: 'dp_address' }), true);
      return;
    }
    const dp = dump_page.decode(reader.view, reader.at);
    const known = exp && index < exp.count ? exp.expect(index) : null;
    const endHere = opts.endRecord && (exp && index >= exp.count ? true : known === null && (dp.dp_flags & DUMP_DH_END) !== 0);
    if (endHere) {
      out.end = { offset, dp, header, problem: endRecordProblem(src, offset, dp) };
      stop(offset, null);
      return;
    }
    let problem: DumpError | null;
    let size: number;
    let pfn: bigint;
    if (known) {
      size = known.size;
      pfn = BigInt(known.pfn);
      problem = pageRecordProblem(src, offset, dp, lim);
      if (!problem && (dp.dp_address !== pfn << PAGE_SHIFT_N || dp.dp_size !== known.size || (known.flags !== null && dp.dp_flags !== known.flags))) {
        const field: keyof DumpPage = dp.dp_address !== pfn << PAGE_SHIFT_N ? 'dp_address' : dp.dp_size !== known.size ? 'dp_size' : 'dp_flags';
        problem = new CorruptDumpError(
          `the record of PFN ${hex(pfn)} at offset ${hex(placeOf(src, offset))} was altered: it says dp_address ${hex(dp.dp_address)}, ` +
          `dp_size ${dp.dp_size}, dp_flags ${hex(dp.dp_flags)}; ${exp!.source} says ${hex(pfn << PAGE_SHIFT_N)}, ${known.size}` +
          `${known.flags !== null ? `, ${hex(known.flags)}` : ''}`, recordWhere(src, offset, field));
      }
    } else {
      size = dp.dp_size;
      pfn = dp.dp_address >> PAGE_SHIFT_N;
      problem = pageRecordProblem(src, offset, dp, lim);
      // A size beyond a page cannot be stepped over: nothing says where the next record starts.
      if (problem && dp.dp_size > lim.pageSize) {
        stop(offset, problem);
        return;
      }
    }
    const dataEnd = offset + BigInt(dump_page.size + size);
    if (dataEnd > limit) {
      // A problem with the header is reported as such, not as the dump cut short.
      stop(offset, problem ?? new TruncatedError(
        `the dump ends at ${hex(placeOf(src, limit))} inside the page data of the record at offset ${hex(placeOf(src, offset))} (dp_size ${size})`,
        recordWhere(src, offset, 'dp_size')), problem === null);
      return;
    }
    const rec = reader.read(offset, dump_page.size + size);
    const hdr = rec.subarray(0, dump_page.size);
    const data = rec.subarray(dump_page.size);
    let dataCrc32: number | null = null;
    let recordCrc32: number | null = null;
    if (exp) {
      recordCrc32s(rec, dump_page.size, crcs);
      dataCrc32 = crcs[0];
      recordCrc32 = crcs[1];
    }
    if (!problem && known && !exp!.check(index, dataCrc32!, recordCrc32!)) {
      problem = new CorruptDumpError(`page data of PFN ${hex(pfn)} at offset ${hex(placeOf(src, offset))} does not match its check in ${exp!.source}`,
        recordWhere(src, offset, 'dp_size'));
    }
    if (!problem) {
      const p = Number(pfn);
      const prev = seen.offsetOf(p);
      if (prev !== null) problem = duplicateError(src, offset, pfn, prev < 0n ? null : prev);
      else seen.add(p, offset);
    }
    yield { index, offset, pfn, dp, header: hdr, data, dataCrc32, recordCrc32, problem };
    out.records++;
    index++;
    offset = dataEnd;
    if (out.records % 4096 === 0) opts.onProgress?.(offset, limit);
  }
}
