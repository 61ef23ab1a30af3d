/**
 * What a panic now would dump, without panicking (lkcd estimate; kdumpctl
 * estimate, dumpadm -e and makedumpfile --mem-usage answer the same
 * question for their designs): the frames of each page class and pass from
 * mem_map, the all-zero frames among them, each pass's record size sampled
 * by stage 1's own sampler, the room stage 1 would have, and for every
 * dump level whether the dump would be complete and how big on the device.
 * The plan is stage 1's (runStage1): the same pass map, capacity and
 * sampler, the same rule for dropping the unused and user passes.
 */
import { DumpError, hex } from '../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../machine/index.js';
import {
  bootRegion, forEachPageType, inRanges, kexecFrames, Kernel, MemMap, PAGE_TYPES, ramoopsFrames, type PageType,
} from '../kernel/index.js';
import { makePageCodec } from './codecs/index.js';
import { DUMP_BUFFER_SIZE, DUMP_LEVEL_ALL_RAM, DUMP_LEVEL_HEADER, DUMP_LEVEL_KERN, DUMP_LEVEL_USED, dumpLevelMask, type DumpCompress } from './lkcd/constants.js';
import { dump_page } from './lkcd/dump_page.js';
import { readBlock } from './memdev/block.js';
import { DUMP_PASS_KERN, DUMP_PASS_NAMES, DUMP_PASS_UNUSED, DUMP_PASS_USER, DUMP_STATE_ARMED } from './memdev/dump_config_block.js';
import { lkcd_csum_record } from './formats/lkcd_ext.js';
import { readDumpConfig } from './driver.js';
import { nextKernelConfig } from './crash.js';
import { dump_record_desc } from './memdev/dump_config_block.js';
import { dumperFrames, STAGE1_HEADER_LEN } from './writer/stage1.js';
import { PASS_MASK, PASS_OF, sampleRecordBytes, scanPasses, stage1CapacityBytes } from './writer/stage1_plan.js';
import { makeBatchEncoder } from './writer/batch_encoder.js';

const RECORD_DESC_BYTES = dump_record_desc.size;

/** makedumpfile's names for our page classes (makedumpfile --mem-usage's TYPE column; -d bits in brackets). */
export const MAKEDUMPFILE_CLASS: Readonly<Record<PageType, string>> = {
  reserved: 'KERN_DATA', slab: 'KERN_DATA', kernel: 'KERN_DATA',
  cache: 'NON_PRI_CACHE', anon: 'USER', free: 'FREE',
};

export interface ClassEstimate {
  class: PageType;
  makedumpfile: string;
  pass: (typeof DUMP_PASS_NAMES)[number];
  frames: number;
  /** Frames of the class that hold only zero bytes (makedumpfile's ZERO). */
  zero: number;
}

export interface PassEstimate {
  pass: (typeof DUMP_PASS_NAMES)[number];
  /** The dump-level mask bit that selects it. */
  mask: number;
  frames: number;
  /** Frames of it that never become space (boot region of the next kernel, the kexec image, ramoops). */
  fixed_frames: number;
  /** Sampled bytes a page record of the pass takes in memory (header, data, descriptor). */
  record_bytes: number;
  /** PAGE_SIZE / the sampled data bytes of a page. */
  ratio: number;
}

export interface LevelEstimate {
  level: number;
  mask: number;
  /** Pages the dump would hold. */
  pages: number;
  /** Passes stage 1 would drop for want of room (their pages listed missing). */
  dropped: string[];
  missing_pages: number;
  complete: boolean;
  /** Estimated bytes of the dump on the device (dump.N): header, records, END, checksums. */
  device_bytes: number;
  /** Estimated bytes stage 1 fills in memory. */
  memory_bytes: number;
}

export interface DumpEstimate {
  compress: DumpCompress;
  frames: number;
  /** The dumper's own frames (config block, memdev maps, buffer): never in the dump. */
  dumper_frames: number;
  classes: ClassEstimate[];
  passes: PassEstimate[];
  /** Frames stage 1 may reuse as space at a panic (those saved first, or not selected), and the bytes they give it. */
  spare_frames: number;
  room_bytes: number;
  levels: LevelEstimate[];
}

const LEVELS = [DUMP_LEVEL_HEADER, DUMP_LEVEL_KERN, DUMP_LEVEL_USED, DUMP_LEVEL_ALL_RAM];

function isZeroPage(page: Buffer): boolean {
  for (let i = 0; i < page.length; i += 8) if (page.readBigUInt64LE(i) !== 0n) return false;
  return true;
}

/** Estimates what a panic now would dump at each level; `compress` defaults to the armed driver's. */
export function estimateDump(kernel: Kernel, opts: { compress?: DumpCompress } = {}): DumpEstimate {
  const cfg = readDumpConfig(kernel);
  if (cfg.dump_addr === 0n) throw new DumpError('USAGE', 'the dump driver is not configured (run lkcd config): its frames and room are not known yet');
  const blockPhys = Kernel.__pa(cfg.dump_addr);
  const block = readBlock(kernel.ram, blockPhys);
  if (block.state !== DUMP_STATE_ARMED) throw new DumpError('USAGE', `a dump held in memory at ${hex(cfg.dump_addr)} awaits writeout (run lkcd config): no new dump would be taken`);
  const compress = opts.compress ?? (block.compress as DumpCompress);
  const ram = kernel.ram;
  const memmap = new MemMap(kernel);
  const owned = dumperFrames(ram, block, blockPhys, []);
  // As at a panic (src/dump/crash.ts): the kexec image and the ramoops region are kept, the next kernel's boot region too.
  const keep = new Set([...kexecFrames(kernel), ...ramoopsFrames(kernel)]);
  const boot = bootRegion(ram.size, nextKernelConfig(kernel));
  const classes = new Map<PageType, ClassEstimate>(PAGE_TYPES.map((t) => [t, { class: t, makedumpfile: MAKEDUMPFILE_CLASS[t], pass: DUMP_PASS_NAMES[PASS_OF[t]], frames: 0, zero: 0 }]));
  const count = [0n, 0n, 0n];
  const fixed = [0n, 0n, 0n];
  let dumper = 0;
  const page = Buffer.alloc(PAGE_SIZE);
  forEachPageType(memmap, (pfn, type) => {
    if (owned.has(pfn)) { dumper++; return; }
    const p = PASS_OF[type];
    count[p]++;
    if (keep.has(pfn) || inRanges(pfn * PAGE_SIZE_N, boot)) fixed[p]++;
    const c = classes.get(type)!;
    c.frames++;
    ram.readInto(pfn * PAGE_SIZE_N, page);
    if (isZeroPage(page)) c.zero++;
  });
  // Stage 1's sampler over stage 1's pass map, compressing with the encoder stage 1 would use.
  const passOf = scanPasses(memmap, Number(ram.size / PAGE_SIZE_N));
  const encoder = makeBatchEncoder(makePageCodec(compress), compress, () => undefined);
  let avg: number[];
  try {
    avg = [0, 1, 2].map((p) => sampleRecordBytes({
      passOf, owned, encoder, readPage: (f, into) => ram.readAt(f * PAGE_SIZE, into),
    }, p, Number(count[p])));
  } finally {
    encoder.close();
  }
  const spare = count.reduce((a, c, p) => a + c - fixed[p], 0n);
  const room = BigInt(stage1CapacityBytes(Number(block.memdev.last_offset) - STAGE1_HEADER_LEN, Number(spare)));
  const passes: PassEstimate[] = [DUMP_PASS_KERN, DUMP_PASS_USER, DUMP_PASS_UNUSED].map((p) => {
    const data = avg[p] ? avg[p] - dump_page.size - RECORD_DESC_BYTES : 0;
    return {
      pass: DUMP_PASS_NAMES[p], mask: PASS_MASK[p], frames: Number(count[p]), fixed_frames: Number(fixed[p]),
      record_bytes: Math.round(avg[p]), ratio: data > 0 ? PAGE_SIZE / data : 0,
    };
  });
  const levels = LEVELS.map((level): LevelEstimate => {
    const mask = dumpLevelMask(level);
    const selected = PASS_MASK.map((m) => (mask & m) !== 0);
    const need = (): bigint => [0, 1, 2].reduce((t, p) => (selected[p] ? t + BigInt(Math.ceil(Number(count[p]) * avg[p])) : t), 0n);
    const dropped: string[] = [];
    let missing = 0n;
    // Stage 1's rule: the unused pass, then the user pass, is dropped when the plan does not fit.
    for (const p of [DUMP_PASS_UNUSED, DUMP_PASS_USER]) {
      if (selected[p] && need() > room) { selected[p] = false; dropped.push(DUMP_PASS_NAMES[p]); missing += count[p]; }
    }
    const fits = need() <= room;
    const pages = [0, 1, 2].reduce((t, p) => (selected[p] ? t + count[p] : t), 0n);
    // dump.N: the header buffer, each page's record less its in-memory descriptor plus its checksum record, the END record.
    const onDevice = [0, 1, 2].reduce((t, p) => (selected[p] ? t + Number(count[p]) * (avg[p] - RECORD_DESC_BYTES + lkcd_csum_record.size) : t), 0);
    return {
      level, mask, pages: Number(pages), dropped, missing_pages: Number(missing), complete: dropped.length === 0 && fits,
      device_bytes: Math.round(DUMP_BUFFER_SIZE + onDevice + dump_page.size), memory_bytes: Number(need()),
    };
  });
  return {
    compress, frames: Number(ram.size / PAGE_SIZE_N), dumper_frames: dumper, classes: [...classes.values()], passes,
    spare_frames: Number(spare), room_bytes: Number(room), levels,
  };
}
