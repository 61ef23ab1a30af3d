import { CorruptDumpError, hex, viewOf } from '../../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N, type PhysicalRam } from '../../machine/index.js';
import { makePageCodec, type PageCodec } from '../codecs/index.js';
import {
  DUMP_ASM_MAGIC_NUMBER, DUMP_DH_COMPRESSED, DUMP_DH_END, DUMP_DH_RAW, DUMP_MAGIC_NUMBER, DUMP_VERSION_NUMBER, type DumpCompress,
} from '../lkcd/constants.js';
import { dump_header, type DumpHeader } from '../lkcd/dump_header.js';
import { dump_header_asm, type DumpHeaderAsm } from '../lkcd/dump_header_asm.js';
import { dump_page } from '../lkcd/dump_page.js';
import { readBlock } from '../memdev/block.js';
import { DUMP_STATE_SAVED, dump_missing_page, type DumpConfigBlock, type DumpSegment } from '../memdev/dump_config_block.js';
import { Memdev } from '../memdev/memdev.js';

export interface PageRecord {
  /** Logical offset of the record's dump_page header in the memdev. */
  offset: bigint;
  size: number;
  flags: number;
  pass: number;
}

/**
 * A dump saved in memory by stage 1, read from nothing but the address of
 * its config block (what crashdump= gives the next kernel): header, page
 * index and pages, every record checked as stage 2's dph_valid() checks it.
 */
export class InplaceDump {
  private readonly index = new Map<bigint, PageRecord>();
  private readonly order: bigint[] = [];
  private readonly codec: PageCodec;

  private constructor(
    readonly ram: PhysicalRam,
    readonly blockPhys: bigint,
    readonly block: DumpConfigBlock,
    readonly memdev: Memdev,
    readonly header: DumpHeader,
    readonly asm: DumpHeaderAsm,
  ) {
    this.codec = makePageCodec(header.dh_dump_compress as DumpCompress);
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
    const maxPfn = this.ram.size / PAGE_SIZE_N;
    for (const seg of this.segments) {
      let pos = seg.start;
      let n = 0;
      while (pos < seg.end) {
        const dp = dump_page.decode(viewOf(this.memdev.read(pos, dump_page.size)));
        const bad = (why: string): never => {
          throw new CorruptDumpError(`invalid page record at memdev offset ${hex(pos)}: ${why}`, { struct: 'dump_page', offset: pos });
        };
        if (dp.dp_address % PAGE_SIZE_N !== 0n) bad(`dp_address ${hex(dp.dp_address)} is not page aligned`);
        if (dp.dp_flags !== DUMP_DH_RAW && dp.dp_flags !== DUMP_DH_COMPRESSED) bad(`dp_flags ${hex(dp.dp_flags)}`);
        if (dp.dp_size > PAGE_SIZE || (dp.dp_flags === DUMP_DH_RAW && dp.dp_size !== PAGE_SIZE)) bad(`dp_size ${dp.dp_size}`);
        const pfn = dp.dp_address / PAGE_SIZE_N;
        if (pfn >= maxPfn) bad(`page ${hex(dp.dp_address)} is beyond RAM`);
        if (this.index.has(pfn)) bad(`duplicate page ${hex(dp.dp_address)}`);
        this.index.set(pfn, { offset: pos, size: dp.dp_size, flags: dp.dp_flags, pass: seg.pass });
        this.order.push(pfn);
        pos += BigInt(dump_page.size + dp.dp_size);
        n++;
      }
      if (pos !== seg.end || n !== seg.nr_pages) throw new CorruptDumpError(`segment [${hex(seg.start)}, ${hex(seg.end)}) ends at ${hex(pos)} after ${n} records (expected ${seg.nr_pages})`, { struct: 'dump_segment' });
    }
    const end = dump_page.decode(viewOf(this.memdev.read(this.block.end_offset, dump_page.size)));
    if (!(end.dp_flags & DUMP_DH_END)) throw new CorruptDumpError(`no end record at memdev offset ${hex(this.block.end_offset)}`, { struct: 'dump_page', field: 'dp_flags' });
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

  /** The page as it was when saved; throws if it was not saved. */
  readPage(pfn: bigint): Uint8Array {
    const r = this.index.get(pfn);
    if (!r) throw new CorruptDumpError(`page ${hex(pfn * PAGE_SIZE_N)} is not in the dump`, { address: pfn * PAGE_SIZE_N, space: 'phys' });
    const data = this.memdev.read(r.offset + BigInt(dump_page.size), r.size);
    return this.codec.decode(r.flags, data, new Uint8Array(PAGE_SIZE));
  }

  /** Ranges of pages the dump should hold but does not, as stage 1 recorded them. */
  missingRanges(): Array<[bigint, bigint]> {
    const out: Array<[bigint, bigint]> = [];
    let pfn = this.block.missing_root;
    while (pfn !== 0n) {
      const page = dump_missing_page.decode(viewOf(this.ram.read(pfn * PAGE_SIZE_N, PAGE_SIZE)));
      for (let i = 0; i < page.count; i++) out.push([page.ranges[i].start, page.ranges[i].end]);
      pfn = page.next_pfn;
    }
    return out;
  }

  close(): void {
    this.codec.close();
  }
}
