/**
 * The dump-side chain walks over RAM are bounded by what the structure can
 * hold and name what is broken: the missing-ranges list, the memdev's
 * indirect chain and counts, the record table. Each structure is written
 * here byte by byte (offsets from the codecs' field lists) into a small
 * RAM image, broken one way at a time.
 */
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DumpError } from '../../../src/codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N, PhysicalRam } from '../../../src/machine/index.js';
import {
  DUMP_IND_MAP_SZ, DUMP_RANGE_DROPPED, DUMP_RANGE_NOFIT, MISSING_RANGES_PER_PAGE, Memdev, RECORD_DESCS_PER_PAGE, dump_config_block,
  dump_missing_page, dump_record_desc, dump_record_table_page, loadRecordTable, readMissingList, type DumpConfigBlock,
} from '../../../src/dump/index.js';
import { makeTempDir, removeTempDir } from '../../helpers/machine.js';

const RAM_BYTES = 16n << 20n;
const MAX_PFN = RAM_BYTES / PAGE_SIZE_N;
let dir: string;
let ram: PhysicalRam;
let seq = 0;

beforeAll(() => { dir = makeTempDir('ram-lists'); });
afterAll(() => removeTempDir(dir));
afterEach(() => ram?.close());

function freshRam(bytes = RAM_BYTES): PhysicalRam {
  ram = PhysicalRam.create(path.join(dir, `ram-${++seq}`), bytes);
  return ram;
}

function caught(fn: () => unknown): DumpError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DumpError);
    return e as DumpError;
  }
  throw new Error('expected a DumpError');
}

/** One page of the missing-ranges list at `pfn`: next, count, reason, ranges. */
function writeMissingPage(pfn: bigint, next: bigint, reason: number, ranges: Array<[bigint, bigint]>, count = ranges.length): void {
  const page = Buffer.alloc(PAGE_SIZE);
  const o = dump_missing_page.offsetOf;
  page.writeBigUInt64LE(next, o.next_pfn);
  page.writeUInt32LE(count, o.count);
  page.writeUInt32LE(reason, o.reason);
  ranges.forEach(([s, e], i) => {
    page.writeBigUInt64LE(s, o.ranges + 16 * i);
    page.writeBigUInt64LE(e, o.ranges + 16 * i + 8);
  });
  ram.write(pfn * PAGE_SIZE_N, page);
}

const block = (over: Partial<DumpConfigBlock>): DumpConfigBlock => ({ ...dump_config_block.zero(), ...over });

describe('the missing-ranges list', () => {
  it('is read page by page, each range with its page\'s reason', () => {
    freshRam();
    writeMissingPage(100n, 101n, DUMP_RANGE_NOFIT, [[10n, 12n], [20n, 21n]]);
    writeMissingPage(101n, 0n, DUMP_RANGE_DROPPED, [[300n, 400n]]);
    const r = readMissingList(ram, block({ missing_root: 100n, nr_missing_ranges: 3 }));
    expect(r).toEqual({ complete: true, ranges: [
      { start: 10n, end: 12n, reason: 'did-not-fit' }, { start: 20n, end: 21n, reason: 'did-not-fit' }, { start: 300n, end: 400n, reason: 'pass-dropped' },
    ] });
  });

  it('a chain that loops back is named, not followed forever', () => {
    freshRam();
    writeMissingPage(100n, 101n, DUMP_RANGE_NOFIT, [[10n, 12n]]);
    writeMissingPage(101n, 100n, DUMP_RANGE_NOFIT, [[20n, 22n]]);
    const err = caught(() => readMissingList(ram, block({ missing_root: 100n, nr_missing_ranges: 600 })));
    expect(err.message).toBe('missing-ranges list loops back to page 0x64');
  });

  it('a chain longer than its range count can need is named', () => {
    freshRam();
    for (let p = 100n; p < 120n; p++) writeMissingPage(p, p + 1n, DUMP_RANGE_NOFIT, []);
    const err = caught(() => readMissingList(ram, block({ missing_root: 100n, nr_missing_ranges: 1 })));
    expect(err.message).toMatch(/^missing-ranges list runs past the \d+ pages its 1 ranges need$/);
  });

  it('a page claiming more ranges than it holds, a range outside RAM, a page outside RAM: each named', () => {
    freshRam();
    writeMissingPage(100n, 0n, DUMP_RANGE_NOFIT, [], MISSING_RANGES_PER_PAGE + 1);
    expect(caught(() => readMissingList(ram, block({ missing_root: 100n, nr_missing_ranges: 1000 }))).where.field).toBe('count');
    writeMissingPage(100n, 0n, DUMP_RANGE_NOFIT, [[MAX_PFN - 1n, MAX_PFN + 1n]]);
    expect(caught(() => readMissingList(ram, block({ missing_root: 100n, nr_missing_ranges: 1 }))).message).toMatch(/is empty or outside RAM$/);
    expect(caught(() => readMissingList(ram, block({ missing_root: MAX_PFN, nr_missing_ranges: 1 }))).message).toBe(`missing-ranges list page 0x${MAX_PFN.toString(16)} is outside RAM`);
  });
});

describe('the memdev handle and its indirect chain', () => {
  const handle = (over: Partial<DumpConfigBlock['memdev']>): DumpConfigBlock['memdev'] => ({ ...dump_config_block.zero().memdev, ...over });

  it('an indirect chain that loops back is named', () => {
    // 2 GiB (sparse) needs two indirect pages, so a chain of two is plausible until it loops.
    freshRam(2n << 30n);
    // Indirect page 200's chain slot (the last of its DUMP_MAP_SZ words) points back to itself.
    ram.writeU64(200n * PAGE_SIZE_N + BigInt(DUMP_IND_MAP_SZ * 8), 200n);
    const err = caught(() => Memdev.open(ram, handle({ indirect_map_root: 200n, nr_indirect: 2 })));
    expect(err.message).toBe('memdev indirect map chain loops back to pfn 0xc8 after 1 pages');
  });

  it('counts no RAM of this size can need are refused before anything is walked', () => {
    freshRam();
    expect(caught(() => Memdev.open(ram, handle({ indirect_map_root: 200n, nr_indirect: 1000 }))).where.field).toBe('nr_indirect');
    expect(caught(() => Memdev.open(ram, handle({ indirect_map_root: 200n, nr_indirect: 1, nr_map_pages: DUMP_IND_MAP_SZ + 1 }))).where.field).toBe('nr_map_pages');
    expect(caught(() => Memdev.open(ram, handle({ indirect_map_root: 200n, nr_indirect: 1, nr_map_pages: 1, nr_data_pages: 513n }))).where.field).toBe('nr_data_pages');
  });
});

describe('the record table', () => {
  /** A table page at `pfn` holding `entries` (pfn, dp_size, crc16), its entries CRC32 right unless `damage`. */
  function writeTablePage(pfn: bigint, next: bigint, entries: Array<[number, number, number]>, damage = false): void {
    const page = Buffer.alloc(PAGE_SIZE);
    const o = dump_record_table_page.offsetOf;
    page.writeBigUInt64LE(next, o.next_pfn);
    page.writeUInt32LE(entries.length, o.count);
    entries.forEach(([p, size, crc], i) => {
      const at = o.entries + i * dump_record_desc.size;
      page.writeUInt32LE(p, at + dump_record_desc.offsetOf.pfn);
      page.writeUInt16LE(size, at + dump_record_desc.offsetOf.dp_size);
      page.writeUInt16LE(crc, at + dump_record_desc.offsetOf.crc16);
    });
    const body = page.subarray(o.entries, o.entries + entries.length * dump_record_desc.size);
    page.writeUInt32LE((zlib.crc32(body) ^ (damage ? 1 : 0)) >>> 0, o.entries_crc32);
    ram.write(pfn * PAGE_SIZE_N, page);
  }

  it('a count beyond the frames of RAM is refused', () => {
    freshRam();
    expect(caught(() => loadRecordTable(ram, block({ record_table_root: 300n, nr_records: MAX_PFN + 1n }))).where.field).toBe('nr_records');
  });

  it('a chain that loops is followed no further than the pages its records need; a damaged page\'s entries are not trusted', () => {
    freshRam();
    const full = Array.from({ length: RECORD_DESCS_PER_PAGE }, (_, i): [number, number, number] => [1000 + i, 100, i]);
    writeTablePage(300n, 301n, full);
    writeTablePage(301n, 300n, [[5, 4096, 7], [6, 50, 8]], true);
    const t = loadRecordTable(ram, block({ record_table_root: 300n, nr_records: BigInt(RECORD_DESCS_PER_PAGE + 2) }))!;
    expect(t.size.length).toBe(RECORD_DESCS_PER_PAGE + 2);
    expect([t.trusted[0], t.trusted[RECORD_DESCS_PER_PAGE - 1], t.trusted[RECORD_DESCS_PER_PAGE], t.trusted[RECORD_DESCS_PER_PAGE + 1]]).toEqual([1, 1, 0, 0]);
    expect(t.address[1]).toBe(1001n * PAGE_SIZE_N);
  });
});
