/**
 * The dump stage 1 saved in RAM ("in place"), read from nothing but the
 * address of its config block (what crashdump= gives the next kernel):
 * header, page index and pages. Its records are walked by the same walker
 * as a dump file, framed and checked by stage 1's record table.
 */
import { CorruptDumpError, FaultError, hex, viewOf } from '../../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N, type PhysicalRam } from '../../machine/index.js';
import { Kernel } from '../../kernel/index.js';
import { makePageCodec, type PageCodec } from '../codecs/index.js';
import {
  DUMP_ASM_MAGIC_NUMBER, DUMP_MAGIC_NUMBER, DUMP_VERSION_NUMBER, type DumpCompress,
} from '../lkcd/constants.js';
import { dump_header, type DumpHeader } from '../lkcd/dump_header.js';
import { dump_header_asm, type DumpHeaderAsm } from '../lkcd/dump_header_asm.js';
import { dump_page } from '../lkcd/dump_page.js';
import { readBlock } from '../memdev/block.js';
import { DUMP_STATE_SAVED, type DumpConfigBlock, type DumpSegment } from '../memdev/dump_config_block.js';
import {
  dumperRanges, loadRecordTable, mergeListedRanges, readMissingList, recordTableExpectations, type ListedRange,
} from '../memdev/lists.js';
import { Memdev, memdevSource } from '../memdev/memdev.js';
import { endRecordProblem, pfnSeen, walkLkcdRecords, type WalkOutcome } from './lkcd_walk.js';
import type { DumpSource } from './types.js';

export interface PageRecord {
  /** Logical offset of the record's dump_page header in the memdev. */
  offset: bigint;
  size: number;
  flags: number;
  pass: number;
}

/**
 * A dump saved in memory by stage 1. Opening checks every record against
 * the record table (as stage 2 does) and throws the first problem: a dump
 * damaged in RAM is stage 2's to salvage, page by page.
 */
export class InplaceDump {
  private readonly index = new Map<bigint, PageRecord>();
  private readonly order: bigint[] = [];
  private readonly codec: PageCodec;
  readonly source: DumpSource;

  private constructor(
    readonly ram: PhysicalRam,
    readonly blockPhys: bigint,
    readonly block: DumpConfigBlock,
    readonly memdev: Memdev,
    readonly header: DumpHeader,
    readonly asm: DumpHeaderAsm,
  ) {
    this.codec = makePageCodec(header.dh_dump_compress as DumpCompress);
    this.source = memdevSource(memdev, memdev.handle.last_used_offset, `memdev at ${hex(Kernel.__va(blockPhys))}`);
  }

  static open(ram: PhysicalRam, blockPhys: bigint): InplaceDump {
    const block = readBlock(ram, blockPhys);
    if (block.state !== DUMP_STATE_SAVED) throw new CorruptDumpError(`dump config block at ${hex(blockPhys)} holds no saved dump (state ${block.state})`, { struct: 'dump_config_block', field: 'state' });
    const memdev = Memdev.open(ram, block.memdev);
    const hdr = memdev.read(0n, dump_header.size + dump_header_asm.size);
    const header = dump_header.decode(viewOf(hdr), 0);
    if (header.dh_magic_number !== DUMP_MAGIC_NUMBER) throw new CorruptDumpError(`in-memory dump header has magic ${hex(header.dh_magic_number)}`, { struct: 'dump_header', field: 'dh_magic_number' });
    if ((header.dh_version & 0xf) !== DUMP_VERSION_NUMBER || header.dh_header_size !== dump_header.size) {
      throw new CorruptDumpError(`in-memory dump header version ${header.dh_version} size ${header.dh_header_size} unsupported`, { struct: 'dump_header', field: 'dh_version' });
    }
    if (header.dh_page_size !== PAGE_SIZE) throw new CorruptDumpError(`dh_page_size ${header.dh_page_size} is not ${PAGE_SIZE}`, { struct: 'dump_header', field: 'dh_page_size' });
    const asm = dump_header_asm.decode(viewOf(hdr), dump_header.size);
    if (asm.dha_magic_number !== DUMP_ASM_MAGIC_NUMBER) throw new CorruptDumpError('invalid magic number for x86_64 arch header', { struct: 'dump_header_asm', field: 'dha_magic_number' });
    const d = new InplaceDump(ram, blockPhys, block, memdev, header, asm);
    d.buildIndex();
    return d;
  }

  get segments(): DumpSegment[] {
    return this.block.segments.slice(0, this.block.nr_segments);
  }

  private buildIndex(): void {
    const src = this.source;
    const table = loadRecordTable(this.ram, this.block);
    const expected = table ? recordTableExpectations(table) : null;
    const limits = { pageSize: PAGE_SIZE, compress: this.header.dh_dump_compress as DumpCompress, memoryPages: this.ram.size / PAGE_SIZE_N };
    const seen = pfnSeen(this.ram.size / PAGE_SIZE_N);
    let firstIndex = 0;
    for (const seg of this.segments) {
      const outcome: WalkOutcome = { end: null, broken: null, stoppedAt: seg.start, records: 0, cutShort: false };
      for (const rec of walkLkcdRecords(src, limits, { start: seg.start, limit: seg.end, endRecord: false, firstIndex, expected, seen, outcome })) {
        if (rec.problem) throw rec.problem;
        this.index.set(rec.pfn, { offset: rec.offset, size: rec.dp.dp_size, flags: rec.dp.dp_flags, pass: seg.pass });
        this.order.push(rec.pfn);
      }
      if (outcome.broken) throw outcome.broken;
      if (outcome.records !== seg.nr_pages) {
        throw new CorruptDumpError(`segment [${hex(seg.start)}, ${hex(seg.end)}) holds ${outcome.records} records, its descriptor says ${seg.nr_pages}`, { struct: 'dump_segment', field: 'nr_pages' });
      }
      firstIndex += seg.nr_pages;
    }
    const end = new Uint8Array(dump_page.size);
    if (src.readAt(end, this.block.end_offset) < end.length) {
      throw new CorruptDumpError(`no end record at memdev offset ${hex(this.block.end_offset)}: the memdev ends before it`, { struct: 'dump_page', field: 'dp_flags' });
    }
    const problem = endRecordProblem(src, this.block.end_offset, dump_page.decode(viewOf(end), 0));
    if (problem) throw problem;
  }

  /** PFNs present, in stream order. */
  pages(): readonly bigint[] {
    return this.order;
  }

  has(pfn: bigint): boolean {
    return this.index.has(pfn);
  }

  record(pfn: bigint): PageRecord | undefined {
    return this.index.get(pfn);
  }

  /** The page as it was when saved; throws FaultError if it was not saved. */
  readPage(pfn: bigint): Uint8Array {
    const r = this.index.get(pfn);
    if (!r) throw new FaultError(`page ${hex(pfn * PAGE_SIZE_N)} is not in the dump`, { address: pfn * PAGE_SIZE_N, space: 'phys' });
    const data = this.memdev.read(r.offset + BigInt(dump_page.size), r.size);
    return this.codec.decode(r.flags, data, new Uint8Array(PAGE_SIZE));
  }

  /** Listed ranges with reasons: what stage 1 could not save, and the dumper's own frames. */
  ranges(): ListedRange[] {
    return mergeListedRanges([...readMissingList(this.ram, this.block).ranges, ...dumperRanges(this.ram, this.blockPhys, this.block)]);
  }

  /** Ranges of pages the dump should hold but does not, as stage 1 recorded them. */
  missingRanges(): Array<[bigint, bigint]> {
    return readMissingList(this.ram, this.block).ranges.map((r) => [r.start, r.end]);
  }

  close(): void {
    this.codec.close();
  }
}
