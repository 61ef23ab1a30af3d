import { PAGE_SIZE, PAGE_SIZE_N } from '../machine/index.js';
import { LOW_RESERVED_END } from './constants.js';
import type { KernelConfig } from './layout.js';
import { kernelLayout } from './layout.js';
import { page } from './structs/page.js';

/** Pages a booting kernel takes with its early (memblock) allocator, right after mem_map. */
export const EARLY_ALLOC_PAGES = 64n;
/** DUMP_PFN_SAFETY_MARGIN: 1024 pages (4 MiB) left for the next kernel beyond what it is known to use. */
export const DUMP_PFN_SAFETY_MARGIN = 1024n;

/** A half-open physical address range [start, end). */
export interface PhysRange { start: bigint; end: bigint }

/** Where a kernel of configuration `config` puts its boot-time structures on a machine of `ramBytes`. */
export interface BootLayout {
  imageStart: bigint;
  imageEnd: bigint;
  memMapPhys: bigint;
  memMapBytes: bigint;
  earlyStart: bigint;
  earlyEnd: bigint;
}

function pageAlign(x: bigint): bigint {
  return (x + PAGE_SIZE_N - 1n) & ~(PAGE_SIZE_N - 1n);
}

export function bootLayout(ramBytes: bigint, config: KernelConfig): BootLayout {
  return bootLayoutAt(config, config.physicalStart, 0n, ramBytes / BigInt(PAGE_SIZE));
}

/**
 * The same for a kernel loaded at `loadAddr` (a relocated capture kernel)
 * whose mem_map covers frames [minPfn, maxPfn).
 */
export function bootLayoutAt(config: KernelConfig, loadAddr: bigint, minPfn: bigint, maxPfn: bigint): BootLayout {
  const layout = kernelLayout(config);
  const imageStart = loadAddr;
  const imageEnd = imageStart + BigInt(layout.imageSize);
  const memMapPhys = pageAlign(imageEnd);
  const memMapBytes = pageAlign((maxPfn - minPfn) * BigInt(page.size));
  const earlyStart = memMapPhys + memMapBytes;
  const earlyEnd = earlyStart + EARLY_ALLOC_PAGES * PAGE_SIZE_N;
  return { imageStart, imageEnd, memMapPhys, memMapBytes, earlyStart, earlyEnd };
}

/**
 * The boot region (DESIGN 2.2): every frame the next kernel of `config`
 * may overwrite while it boots on this machine. The low megabyte, its
 * image, its mem_map, its early allocations, then a safety margin of the
 * size of a bootmem bitmap plus DUMP_PFN_SAFETY_MARGIN, as LKCD's
 * dump_calc_bootmap_pages() reserved. The dump driver never writes a dump
 * frame here, and a boot never writes outside it.
 */
export function bootRegion(ramBytes: bigint, config: KernelConfig): PhysRange[] {
  const b = bootLayout(ramBytes, config);
  const maxPfn = ramBytes / BigInt(PAGE_SIZE);
  const bitmapPages = (maxPfn / 8n + PAGE_SIZE_N - 1n) / PAGE_SIZE_N;
  const marginEnd = b.earlyEnd + (bitmapPages + DUMP_PFN_SAFETY_MARGIN + 1n) * PAGE_SIZE_N;
  const end = marginEnd < ramBytes ? marginEnd : ramBytes;
  return [{ start: 0n, end: LOW_RESERVED_END }, { start: b.imageStart, end }];
}

export function inRanges(paddr: bigint, ranges: readonly PhysRange[]): boolean {
  return ranges.some((r) => paddr >= r.start && paddr < r.end);
}
