import { viewOf } from '../../codec/index.js';
import { PAGE_SIZE_N } from '../../machine/index.js';
import { MAX_ORDER, PAGE_BUDDY_MAPCOUNT_VALUE, PG_reserved, pageFlag } from '../constants.js';
import type { Kernel } from '../kernel.js';
import { free_area } from '../structs/free_area.js';
import { page } from '../structs/page.js';
import { blankPage, splitIntoBlocks } from './buddy.js';
import type { MemMap } from './mem_map.js';

const BATCH = 8192n;

/**
 * memmap_init + memblock_free_all: every frame starts PG_reserved; the free
 * ranges are then handed to the buddy allocator as maximal aligned blocks,
 * linked through page->lru into free_area[order] in address order. Written
 * in large sequential batches, so booting a 16 GiB machine stays fast.
 * Returns the number of frames made free.
 */
export function initMemMap(kernel: Kernel, memmap: MemMap, freeRanges: Array<[bigint, bigint]>): bigint {
  const blocks: Array<[bigint, number]> = [];
  for (const [s, e] of freeRanges) blocks.push(...splitIntoBlocks(s, e));
  // Per-order neighbours in address order, for the list pointers.
  const byOrder: Array<Array<number>> = Array.from({ length: MAX_ORDER }, () => []);
  blocks.forEach(([, o], i) => byOrder[o].push(i));
  const next = new Array<bigint>(blocks.length);
  const prev = new Array<bigint>(blocks.length);
  const lruOf = (i: number): bigint => memmap.pageVirt(blocks[i][0]) + BigInt(page.offsetOf.lru);
  for (let o = 0; o < MAX_ORDER; o++) {
    const head = kernel.sym('contig_page_data').address + BigInt(o * free_area.size);
    const list = byOrder[o];
    list.forEach((bi, k) => {
      next[bi] = k + 1 < list.length ? lruOf(list[k + 1]) : head;
      prev[bi] = k > 0 ? lruOf(list[k - 1]) : head;
    });
    const area = Buffer.alloc(free_area.size);
    free_area.encode({
      free_list: list.length ? { next: lruOf(list[0]), prev: lruOf(list[list.length - 1]) } : { next: head, prev: head },
      nr_free: BigInt(list.length),
    }, viewOf(area));
    kernel.writeBytes('contig_page_data', area, o * free_area.size);
  }

  const reserved = Buffer.from(page.toBytes({ ...blankPage(), flags: pageFlag(PG_reserved), _refcount: 1 }));
  const freeTail = Buffer.from(page.toBytes(blankPage()));
  let bi = 0;
  let freed = 0n;
  // One buffer for every batch (a new one each is 64 bytes a frame of garbage before a collection).
  const batchBuf = Buffer.allocUnsafe(Number(BATCH) * page.size);
  for (let base = memmap.minPfn; base < memmap.maxPfn; base += BATCH) {
    const n = memmap.maxPfn - base < BATCH ? memmap.maxPfn - base : BATCH;
    const buf = batchBuf.subarray(0, Number(n) * page.size);
    buf.fill(reserved);
    const view = viewOf(buf);
    // Blocks never straddle a batch boundary unless larger than it; handle both by clipping.
    while (bi < blocks.length && blocks[bi][0] < base + n) {
      const [pfn, order] = blocks[bi];
      const end = pfn + (1n << BigInt(order));
      const from = pfn < base ? base : pfn;
      const to = end > base + n ? base + n : end;
      buf.fill(freeTail, Number(from - base) * page.size, Number(to - base) * page.size);
      if (pfn >= base) {
        const off = Number(pfn - base) * page.size;
        view.setInt32(off + page.offsetOf._mapcount, PAGE_BUDDY_MAPCOUNT_VALUE, true);
        view.setBigUint64(off + page.offsetOf.private, BigInt(order), true);
        view.setBigUint64(off + page.offsetOf.lru, next[bi], true);
        view.setBigUint64(off + page.offsetOf.lru + 8, prev[bi], true);
        freed += 1n << BigInt(order);
      }
      if (end > base + n) break;
      bi++;
    }
    kernel.ram.write(memmap.pagePhys(base), buf);
  }
  return freed;
}

/** Complement of reserved pfn ranges within [minPfn, maxPfn). */
export function freeRangesOutside(reserved: Array<[bigint, bigint]>, maxPfn: bigint, minPfn = 0n): Array<[bigint, bigint]> {
  const sorted = [...reserved].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: Array<[bigint, bigint]> = [];
  let cur = minPfn;
  for (const [s, e] of sorted) {
    if (s > cur) out.push([cur, s < maxPfn ? s : maxPfn]);
    if (e > cur) cur = e;
  }
  if (cur < maxPfn) out.push([cur, maxPfn]);
  return out.filter(([s, e]) => e > s);
}

export function physRangeToPfns(start: bigint, end: bigint): [bigint, bigint] {
  return [start / PAGE_SIZE_N, (end + PAGE_SIZE_N - 1n) / PAGE_SIZE_N];
}
