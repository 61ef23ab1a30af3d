/**
 * The lists a saved dump keeps in RAM beside its memdev, read with bounds:
 * the missing-ranges list (with a reason per page of it) and the frames the
 * dumper itself held at the crash. Each walk is bounded by what the config
 * block says the structure holds, and names what it found broken.
 */
import zlib from 'node:zlib';
import { CorruptDumpError, hex, viewOf } from '../../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N, type PhysicalRam } from '../../machine/index.js';
import { DUMP_RANGE_DUMPER, DUMP_RANGE_NAMES, dumpRangeName, type DumpRangeReasonName } from '../lkcd/constants.js';
import {
  MISSING_RANGES_PER_PAGE, RECORD_DESCS_PER_PAGE, dump_missing_page, dump_record_desc, dump_record_table_page, recordCheck,
  type DumpConfigBlock,
} from './dump_config_block.js';
import type { RecordExpectations } from '../formats/lkcd_walk.js';
import { Memdev } from './memdev.js';

/** A listed range of frames, [start, end), with its reason. */
export interface ListedRange {
  start: bigint;
  end: bigint;
  reason: DumpRangeReasonName;
}

/**
 * The missing-ranges list of a saved dump: at most the pages that
 * nr_missing_ranges needs, each holding at most MISSING_RANGES_PER_PAGE
 * ranges inside RAM. `complete` is false when stage 1 had no room for all
 * of it (it then says so on the console).
 */
export function readMissingList(ram: PhysicalRam, block: DumpConfigBlock): { ranges: ListedRange[]; complete: boolean } {
  const maxPfn = ram.size / PAGE_SIZE_N;
  const total = block.nr_missing_ranges;
  // A page holds the ranges of one reason, so each reason may start a page of its own.
  const maxPages = Math.ceil(total / MISSING_RANGES_PER_PAGE) + DUMP_RANGE_NAMES.length;
  const ranges: ListedRange[] = [];
  const where = { struct: 'dump_missing_page', field: 'next_pfn' };
  let pfn = block.missing_root;
  let pages = 0;
  const seen = new Set<bigint>();
  while (pfn !== 0n) {
    if (pfn >= maxPfn) throw new CorruptDumpError(`missing-ranges list page ${hex(pfn)} is outside RAM`, where);
    if (seen.has(pfn)) throw new CorruptDumpError(`missing-ranges list loops back to page ${hex(pfn)}`, where);
    if (++pages > maxPages) throw new CorruptDumpError(`missing-ranges list runs past the ${maxPages} pages its ${total} ranges need`, where);
    seen.add(pfn);
    const page = dump_missing_page.decode(viewOf(ram.read(pfn * PAGE_SIZE_N, PAGE_SIZE)));
    if (page.count > MISSING_RANGES_PER_PAGE || ranges.length + page.count > total) {
      throw new CorruptDumpError(`missing-ranges list page ${hex(pfn)} holds ${page.count} ranges, more than the list or the page can`, { struct: 'dump_missing_page', field: 'count' });
    }
    for (let i = 0; i < page.count; i++) {
      const { start, end } = page.ranges[i];
      if (start >= end || end > maxPfn) {
        throw new CorruptDumpError(`missing range [${hex(start)}, ${hex(end)}) in list page ${hex(pfn)} is empty or outside RAM`, { struct: 'dump_missing_page', field: 'ranges' });
      }
      ranges.push({ start, end, reason: dumpRangeName(page.reason) });
    }
    pfn = page.next_pfn;
  }
  return { ranges, complete: ranges.length === total };
}

/**
 * The frames the dumper held when the dump was taken, as sorted ranges with
 * reason 'dumper': the config block, the memdev's indirect pages and
 * bootstrap space (set up when the dump was armed), and the dump buffer.
 * Stage 1 neither saves nor reuses them; listing them accounts for them.
 */
export function dumperRanges(ram: PhysicalRam, blockPhys: bigint, block: DumpConfigBlock): ListedRange[] {
  const frames: bigint[] = [blockPhys / PAGE_SIZE_N, ...Memdev.open(ram, block.memdev).bootstrapFrames()];
  const maxPfn = ram.size / PAGE_SIZE_N;
  if (block.dump_buf_pfn + BigInt(block.dump_buf_pages) > maxPfn) {
    throw new CorruptDumpError(`dump buffer [${hex(block.dump_buf_pfn)}, +${block.dump_buf_pages}) is outside RAM`, { struct: 'dump_config_block', field: 'dump_buf_pfn' });
  }
  for (let i = 0n; i < BigInt(block.dump_buf_pages); i++) frames.push(block.dump_buf_pfn + i);
  return pfnRanges(frames, dumpRangeName(DUMP_RANGE_DUMPER));
}

/** Sorted, merged [start, end) ranges of a set of frames, all with one reason. */
export function pfnRanges(frames: Iterable<bigint>, reason: DumpRangeReasonName): ListedRange[] {
  const sorted = [...new Set(frames)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const out: ListedRange[] = [];
  for (const pfn of sorted) {
    const last = out[out.length - 1];
    if (last && last.end === pfn) last.end = pfn + 1n;
    else out.push({ start: pfn, end: pfn + 1n, reason });
  }
  return out;
}

/** Sorts ranges by start and merges neighbours that touch or overlap and share a reason. */
export function mergeListedRanges(ranges: Iterable<ListedRange>): ListedRange[] {
  const sorted = [...ranges].map((r) => ({ ...r })).sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : 0));
  const out: ListedRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && last.reason === r.reason && r.start <= last.end) {
      if (r.end > last.end) last.end = r.end;
    } else out.push(r);
  }
  return out;
}

/** The record table, loaded: expected address, size and data check of every record; untrusted where a table page was damaged. */
export interface RecordTable {
  address: BigUint64Array;
  size: Uint32Array;
  crc: Uint32Array;
  trusted: Uint8Array;
}

/**
 * Loads stage 1's record table: nr_records entries in a chain of pages,
 * each page's entries under their own CRC32. The walk is bounded by the
 * pages nr_records needs; an entry on a damaged page is kept but not
 * trusted. null when the dump has no table.
 */
export function loadRecordTable(ram: PhysicalRam, block: DumpConfigBlock): RecordTable | null {
  if (block.record_table_root === 0n) return null;
  const maxPfn = ram.size / PAGE_SIZE_N;
  // One record per saved page at most: a count beyond the frames of RAM is not a table.
  if (block.nr_records > maxPfn) {
    throw new CorruptDumpError(`record table claims ${block.nr_records} records, more than the ${maxPfn} frames of RAM`, { struct: 'dump_config_block', field: 'nr_records' });
  }
  const n = Number(block.nr_records);
  const t: RecordTable = { address: new BigUint64Array(n), size: new Uint32Array(n), crc: new Uint32Array(n), trusted: new Uint8Array(n) };
  const maxPages = Math.ceil(n / RECORD_DESCS_PER_PAGE);
  let pfn = block.record_table_root;
  let i = 0;
  for (let pages = 0; pfn !== 0n && pfn < maxPfn && i < n && pages < maxPages; pages++) {
    const raw = ram.read(pfn * PAGE_SIZE_N, PAGE_SIZE);
    const page = dump_record_table_page.decode(viewOf(raw));
    const count = Math.min(page.count, RECORD_DESCS_PER_PAGE, n - i);
    const body = raw.subarray(dump_record_table_page.offsetOf.entries, dump_record_table_page.offsetOf.entries + count * dump_record_desc.size);
    const ok = (zlib.crc32(body) >>> 0) === page.entries_crc32 && page.count <= RECORD_DESCS_PER_PAGE;
    // Every page but the last is full: a damaged count must not shift the entries after it.
    const step = ok ? count : Math.min(RECORD_DESCS_PER_PAGE, n - i);
    for (let k = 0; k < step; k++, i++) {
      const e = page.entries[k];
      t.address[i] = BigInt(e.pfn) * PAGE_SIZE_N;
      t.size[i] = e.dp_size;
      t.crc[i] = e.crc16;
      t.trusted[i] = ok && BigInt(e.pfn) < maxPfn && e.dp_size > 0 && e.dp_size <= PAGE_SIZE ? 1 : 0;
    }
    pfn = page.next_pfn;
  }
  return t;
}

/** The record table as the walker's expectations: header fields and the 16-bit check of the data. */
export function recordTableExpectations(t: RecordTable): RecordExpectations {
  return {
    count: t.size.length,
    source: 'the record table',
    expect: (i) => (t.trusted[i] ? { pfn: Number(t.address[i] / PAGE_SIZE_N), size: t.size[i], flags: null } : null),
    check: (i, dataCrc32) => recordCheck(dataCrc32) === t.crc[i],
  };
}
