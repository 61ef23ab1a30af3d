import { CorruptDumpError, hex, viewOf } from '../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N, type PhysicalRam } from '../machine/index.js';
import {
  bootRegion, CRASHDUMP_ADDR_NONE, inRanges, Kernel, LOGLEVEL_INFO, LOGLEVEL_WARNING, PAGE_OFFSET, printk, type KernelConfig, type PhysRange,
} from '../kernel/index.js';
import { dump_config } from '../kernel/structs/dump_config.js';
import { readBlock } from './memdev/block.js';
import {
  DUMP_STATE_SAVED, MISSING_RANGES_PER_PAGE, RECORD_DESCS_PER_PAGE, dump_missing_page, type DumpConfigBlock,
} from './memdev/dump_config_block.js';
import { DUMP_RANGE_NAMES } from './lkcd/constants.js';
import { Memdev } from './memdev/memdev.js';

export { CRASHDUMP_ADDR_NONE } from '../kernel/index.js';

/** Parses crashdump=<addr> from a command line, memparse-style; null when absent. */
export function parseCrashdumpArg(cmdline: string): { text: string; value: bigint | null } | null {
  const m = /(?:^|\s)crashdump=(\S*)/.exec(cmdline);
  if (!m) return null;
  const t = /^(0x[0-9a-f]+|\d+)([kmg]?)$/i.exec(m[1]);
  if (!t) return { text: m[1], value: null };
  const shift = { '': 0n, k: 10n, m: 20n, g: 30n }[t[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  return { text: m[1], value: BigInt(t[1]) << shift };
}

/**
 * Every frame a saved dump occupies: the block, the memdev's frames, the
 * missing-ranges pages, the header copy, the record table. The two chains
 * are followed no further than their counts can need, and a loop is named.
 */
export function savedDumpFrames(ram: PhysicalRam, blockPhys: bigint, block: DumpConfigBlock): bigint[] {
  const frames: bigint[] = [];
  forEachSavedDumpFrame(ram, blockPhys, block, (pfn) => { frames.push(pfn); });
  return frames;
}

/** savedDumpFrames one frame at a time, in the same order, without the list (a million BigInts at 4 GiB). */
export function forEachSavedDumpFrame(ram: PhysicalRam, blockPhys: bigint, block: DumpConfigBlock, frame: (pfn: bigint) => void): void {
  frame(blockPhys / PAGE_SIZE_N);
  for (const pfn of Memdev.open(ram, block.memdev).frames()) frame(pfn);
  const maxPfn = ram.size / PAGE_SIZE_N;
  const chain = (root: bigint, maxPages: number, what: string, field: string, next: (pfn: bigint) => bigint): void => {
    const seen = new Set<bigint>();
    for (let pfn = root; pfn !== 0n; pfn = next(pfn)) {
      const where = { struct: 'dump_config_block', field };
      if (pfn >= maxPfn) throw new CorruptDumpError(`${what} page ${hex(pfn)} is outside RAM`, where);
      if (seen.has(pfn)) throw new CorruptDumpError(`${what} loops back to page ${hex(pfn)}`, where);
      if (seen.size >= maxPages) throw new CorruptDumpError(`${what} runs past the ${maxPages} pages its count needs`, where);
      seen.add(pfn);
      frame(pfn);
    }
  };
  // A page of the missing list holds one reason's ranges, so each reason may start a page.
  chain(block.missing_root, Math.ceil(block.nr_missing_ranges / MISSING_RANGES_PER_PAGE) + DUMP_RANGE_NAMES.length, 'missing-ranges list', 'missing_root',
    (pfn) => dump_missing_page.decode(viewOf(ram.read(pfn * PAGE_SIZE_N, PAGE_SIZE))).next_pfn);
  for (const copy of block.header_copy_pfn) if (copy !== 0n) frame(copy);
  const records = block.nr_records > maxPfn ? maxPfn : block.nr_records;
  chain(block.record_table_root, Number((records + BigInt(RECORD_DESCS_PER_PAGE) - 1n) / BigInt(RECORD_DESCS_PER_PAGE)), 'record table', 'record_table_root',
    (pfn) => ram.readU64(pfn * PAGE_SIZE_N));
}

/** Coalesces frames (PFNs as numbers, any order, repeats allowed) into sorted physical ranges. */
export function framesToRanges(frames: ArrayLike<number>): PhysRange[] {
  // Sorted as numbers in a typed array: a Set and a sorted copy of a million BigInts cost 30 MiB.
  const pfns = Float64Array.from(frames);
  pfns.sort();
  const out: PhysRange[] = [];
  let start = -1;
  let end = -1;
  for (let i = 0; i < pfns.length; i++) {
    const pfn = pfns[i];
    if (pfn < end) continue;
    if (pfn === end) { end++; continue; }
    if (start >= 0) out.push({ start: BigInt(start) * PAGE_SIZE_N, end: BigInt(end) * PAGE_SIZE_N });
    start = pfn;
    end = pfn + 1;
  }
  if (start >= 0) out.push({ start: BigInt(start) * PAGE_SIZE_N, end: BigInt(end) * PAGE_SIZE_N });
  return out;
}

/**
 * crashdump_reserve() for the booting kernel: finds the dump config block
 * at crashdump=<addr>, checks it (magic, checksum, state) and that every
 * frame of the saved dump is inside RAM and outside this kernel's boot
 * region, and returns the frames to reserve before any allocation. Any
 * problem is logged and the dump ignored: the boot goes on.
 */
export function crashdumpReserve(kernel: Kernel, config: KernelConfig): PhysRange[] {
  const cmdline = kernel.readBytes('boot_command_line').toString('latin1').replace(/\0.*$/s, '');
  kernel.writeU64('crashdump_addr', CRASHDUMP_ADDR_NONE);
  const arg = parseCrashdumpArg(cmdline);
  if (!arg) return [];
  const ignore = (why: string): PhysRange[] => {
    printk(kernel, `crashdump: ${why}. Ignoring dump`, LOGLEVEL_WARNING);
    return [];
  };
  if (arg.value === null) return ignore(`crashdump=${arg.text} is not an address`);
  const addr = arg.value;
  if (addr < PAGE_OFFSET || addr - PAGE_OFFSET >= kernel.ram.size) return ignore(`crashdump=${hex(addr)} is not a direct-mapped address of this machine's RAM`);
  const phys = addr - PAGE_OFFSET;
  if (phys % PAGE_SIZE_N !== 0n) return ignore(`crashdump=${hex(addr)} is not page aligned`);
  try {
    const block = readBlock(kernel.ram, phys);
    if (block.state !== DUMP_STATE_SAVED) return ignore(`the dump config block at ${hex(addr)} holds no saved dump (state ${block.state})`);
    const boot = bootRegion(kernel.ram.size, config);
    // The frames as numbers, not a list of BigInts (a million of them for a 4 GiB dump).
    const frames: number[] = [];
    let clash: bigint | null = null;
    forEachSavedDumpFrame(kernel.ram, phys, block, (pfn) => {
      if (clash === null && inRanges(pfn * PAGE_SIZE_N, boot)) clash = pfn;
      frames.push(Number(pfn));
    });
    if (clash !== null) return ignore(`dump frame ${hex(clash)} lies in this kernel's boot region`);
    const ranges = framesToRanges(frames);
    printk(kernel, `Dump may be available from previous boot: ${block.pages_saved} pages in ${frames.length} frames at ${hex(addr)}${block.truncated ? ' (TRUNCATED)' : ''}`, LOGLEVEL_INFO);
    kernel.writeU64('crashdump_addr', addr);
    const cfg = kernel.readStruct(dump_config, 'dump_config');
    kernel.writeStruct(dump_config, 'dump_config', { ...cfg, dump_addr: addr, active: 0 });
    return ranges;
  } catch (e) {
    if (e instanceof CorruptDumpError) return ignore(`invalid dump at ${hex(addr)}: ${e.message}`);
    throw e;
  }
}

/** The saved dump this kernel reserved at boot, if any: (address, physical address). */
export function pendingDump(kernel: Kernel): { addr: bigint; phys: bigint } | null {
  const addr = kernel.readU64('crashdump_addr');
  if (addr === 0n || addr === CRASHDUMP_ADDR_NONE) return null;
  return { addr, phys: Kernel.__pa(addr) };
}
