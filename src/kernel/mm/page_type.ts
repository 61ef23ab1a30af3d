import {
  PAGE_BUDDY_MAPCOUNT_VALUE, PAGE_MAPPING_ANON, PG_lru, PG_reserved, PG_slab, pageFlag,
} from '../constants.js';
import { PAGE_FIELD, type MemMap } from './mem_map.js';

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

/**
 * Walks mem_map and calls `fn(pfn, type)` for every frame in [start, end).
 * Free frames are the whole block of a buddy head (1 << page->private frames),
 * as makedumpfile's exclude_free_page counts them.
 */
export function forEachPageType(memmap: MemMap, fn: (pfn: bigint, type: PageType) => void,
  start = 0n, end = memmap.maxPfn): void {
  let freeUntil = start;
  memmap.scan(start, end - start, (pfn, view, off) => {
    if (pfn < freeUntil) { fn(pfn, 'free'); return; }
    const mapcount = view.getInt32(off + PAGE_FIELD._mapcount, true);
    const flags = view.getBigUint64(off + PAGE_FIELD.flags, true);
    if (mapcount === PAGE_BUDDY_MAPCOUNT_VALUE && !(flags & F_SLAB)) {
      const order = view.getBigUint64(off + PAGE_FIELD.private, true);
      freeUntil = pfn + (1n << order);
      fn(pfn, 'free');
      return;
    }
    fn(pfn, allocatedPageType(flags, view.getBigUint64(off + PAGE_FIELD.mapping, true)));
  });
}

export function countPageTypes(memmap: MemMap): PageCounts {
  const c = emptyCounts();
  forEachPageType(memmap, (_pfn, t) => { c[t] += 1n; });
  return c;
}
