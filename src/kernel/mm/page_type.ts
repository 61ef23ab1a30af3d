import {
  PAGE_BUDDY_MAPCOUNT_VALUE, PAGE_MAPPING_ANON, PG_lru, PG_reserved, PG_slab, pageFlag,
} from '../constants.js';
import { PAGE_FIELD, type MemMap } from './mem_map.js';
import { page } from '../structs/page.js';

const STRUCT_PAGE_SIZE = page.size;

/**
 * What a frame is used for, decided from its struct page alone, as the
 * kernel (and makedumpfile) decide it.
 */
export type PageType = 'free' | 'reserved' | 'slab' | 'kernel' | 'cache' | 'anon';
export const PAGE_TYPES: readonly PageType[] = ['free', 'reserved', 'slab', 'kernel', 'cache', 'anon'];

export type PageCounts = Record<PageType, bigint>;

export function emptyCounts(): PageCounts {
  return { free: 0n, reserved: 0n, slab: 0n, kernel: 0n, cache: 0n, anon: 0n };
}

const F_RESERVED = pageFlag(PG_reserved);
const F_SLAB = pageFlag(PG_slab);
const F_LRU = pageFlag(PG_lru);

/** Type of an allocated (non-buddy) page from its flags and mapping. */
export function allocatedPageType(flags: bigint, mapping: bigint): Exclude<PageType, 'free'> {
  if (flags & F_RESERVED) return 'reserved';
  if (flags & F_SLAB) return 'slab';
  if (mapping !== 0n && (mapping & PAGE_MAPPING_ANON)) return 'anon';
  if (mapping !== 0n && (flags & F_LRU)) return 'cache';
  return 'kernel';
}

/** Reads `count` raw struct pages starting at `pfn` (from live RAM, or from a dump). */
export type StructPageReader = (pfn: bigint, count: number) => Uint8Array;

/** Struct pages forEachPageTypeRaw asks its reader for at once, at most. */
export const SCAN_BATCH = 4096;

/**
 * Calls `fn(pfn, type)` for every frame in [start, end), deciding each from
 * its struct page alone. Free frames are the whole block of a buddy head
 * (1 << page->private frames), as makedumpfile's exclude_free_page counts them.
 */
export function forEachPageTypeRaw(read: StructPageReader, start: bigint, end: bigint, fn: (pfn: bigint, type: PageType) => void): void {
  let freeUntil = start;
  for (let base = start; base < end; base += BigInt(SCAN_BATCH)) {
    const n = Number(end - base < BigInt(SCAN_BATCH) ? end - base : BigInt(SCAN_BATCH));
    const raw = read(base, n);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let i = 0; i < n; i++) {
      const pfn = base + BigInt(i);
      const off = i * STRUCT_PAGE_SIZE;
      if (pfn < freeUntil) { fn(pfn, 'free'); continue; }
      const mapcount = view.getInt32(off + PAGE_FIELD._mapcount, true);
      const flags = view.getBigUint64(off + PAGE_FIELD.flags, true);
      if (mapcount === PAGE_BUDDY_MAPCOUNT_VALUE && !(flags & F_SLAB)) {
        freeUntil = pfn + (1n << view.getBigUint64(off + PAGE_FIELD.private, true));
        fn(pfn, 'free');
        continue;
      }
      fn(pfn, allocatedPageType(flags, view.getBigUint64(off + PAGE_FIELD.mapping, true)));
    }
  }
}

/** forEachPageTypeRaw over the running kernel's mem_map. */
export function forEachPageType(memmap: MemMap, fn: (pfn: bigint, type: PageType) => void,
  start = memmap.minPfn, end = memmap.maxPfn): void {
  // One buffer for every batch: a new one per batch is 64 bytes a frame of garbage (19 MiB at 1 GiB) before a collection.
  const buf = Buffer.allocUnsafe(SCAN_BATCH * STRUCT_PAGE_SIZE);
  forEachPageTypeRaw((pfn, count) => {
    const out = buf.subarray(0, count * STRUCT_PAGE_SIZE);
    memmap.kernel.ram.readInto(memmap.pagePhys(pfn), out);
    return out;
  }, start, end, fn);
}

export function countPageTypes(memmap: MemMap): PageCounts {
  const c = emptyCounts();
  forEachPageType(memmap, (_pfn, t) => { c[t] += 1n; });
  return c;
}
