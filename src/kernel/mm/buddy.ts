import { CorruptDumpError, DumpError, hex, InternalError } from '../../codec/index.js';
import { MAX_ORDER, PAGE_BUDDY_MAPCOUNT_VALUE, PAGE_MAPCOUNT_NONE, PG_reserved, pageFlag } from '../constants.js';
import { Kernel } from '../kernel.js';
import { free_area } from '../structs/free_area.js';
import { page, type Page } from '../structs/page.js';
import type { MemMap } from './mem_map.js';

/** list_del poison values (include/linux/poison.h, POISON_POINTER_DELTA 0xdead000000000000). */
export const LIST_POISON1 = 0xdead000000000100n;
export const LIST_POISON2 = 0xdead000000000122n;

const LRU_OFFSET = BigInt(page.offsetOf.lru);

/** An unused struct page: what a tail of a free block, or a just-freed page, holds. */
export function blankPage(): Page {
  return {
    flags: 0n, lru: { next: 0n, prev: 0n }, mapping: 0n, index: 0n, private: 0n,
    _mapcount: PAGE_MAPCOUNT_NONE, _refcount: 0, mem_cgroup: 0n,
  };
}

/**
 * The buddy page allocator, with all of its state in RAM: free blocks are
 * linked through page->lru into contig_page_data's free_area[order] lists,
 * and a free block's head carries the buddy page type and its order in
 * page->private (mm/page_alloc.c).
 */
export class BuddyAllocator {
  constructor(readonly kernel: Kernel, readonly memmap: MemMap) {}

  private areaPhys(order: number): bigint {
    return this.kernel.symPhys('contig_page_data') + BigInt(order * free_area.size);
  }
  /** Virtual address of free_area[order].free_list (a list_head in the kernel image). */
  headVirt(order: number): bigint {
    return this.kernel.sym('contig_page_data').address + BigInt(order * free_area.size);
  }
  private lruVirt(pfn: bigint): bigint {
    return this.memmap.pageVirt(pfn) + LRU_OFFSET;
  }
  private pfnOfLru(v: bigint): bigint {
    return this.memmap.pfnOfPageVirt(v);
  }
  private rd(v: bigint): bigint { return this.kernel.ram.readU64(this.kernel.pa(v)); }
  private wr(v: bigint, x: bigint): void { this.kernel.ram.writeU64(this.kernel.pa(v), x); }

  private listAdd(entry: bigint, head: bigint): void {
    const next = this.rd(head);
    this.wr(entry, next);
    this.wr(entry + 8n, head);
    this.wr(next + 8n, entry);
    this.wr(head, entry);
  }
  private listDel(entry: bigint): void {
    const next = this.rd(entry);
    const prev = this.rd(entry + 8n);
    this.wr(prev, next);
    this.wr(next + 8n, prev);
    this.wr(entry, LIST_POISON1);
    this.wr(entry + 8n, LIST_POISON2);
  }
  private addNrFree(order: number, delta: bigint): void {
    const p = this.areaPhys(order) + BigInt(free_area.offsetOf.nr_free);
    this.kernel.ram.writeU64(p, this.kernel.ram.readU64(p) + delta);
  }

  nrFree(order: number): bigint {
    return this.kernel.ram.readU64(this.areaPhys(order) + BigInt(free_area.offsetOf.nr_free));
  }
  /** Free frames in all lists. */
  freePages(): bigint {
    let n = 0n;
    for (let o = 0; o < MAX_ORDER; o++) n += this.nrFree(o) << BigInt(o);
    return n;
  }

  private isBuddyHead(p: Page, order: number): boolean {
    return p._mapcount === PAGE_BUDDY_MAPCOUNT_VALUE && p.private === BigInt(order);
  }

  private markBuddyHead(pfn: bigint, order: number): void {
    const p = blankPage();
    p._mapcount = PAGE_BUDDY_MAPCOUNT_VALUE;
    p.private = BigInt(order);
    this.memmap.set(pfn, p);
  }

  /**
   * Takes a block of 2^order frames off the free lists and returns its first
   * pfn, or null when no block that large is free. The frames' struct pages
   * are left blank with a reference count of one on the head; the caller
   * sets what they are used for.
   */
  alloc(order: number): bigint | null {
    for (let o = order; o < MAX_ORDER; o++) {
      const head = this.headVirt(o);
      const first = this.rd(head);
      if (first === head) continue;
      const pfn = this.pfnOfLru(first);
      this.listDel(first);
      this.addNrFree(o, -1n);
      let cur = o;
      while (cur > order) {
        cur--;
        const buddy = pfn + (1n << BigInt(cur));
        this.markBuddyHead(buddy, cur);
        this.listAdd(this.lruVirt(buddy), this.headVirt(cur));
        this.addNrFree(cur, 1n);
      }
      const headPage = blankPage();
      headPage._refcount = 1;
      this.memmap.set(pfn, headPage);
      return pfn;
    }
    return null;
  }

  /** Like alloc, but failing with one line when memory is exhausted. */
  allocOrThrow(order: number, what: string): bigint {
    const pfn = this.alloc(order);
    if (pfn === null) throw new DumpError('IO', `out of memory allocating ${what} (order ${order})`);
    return pfn;
  }

  /**
   * Returns a block to the free lists, merging with free buddies. The frames'
   * contents stay as they were: free pages hold stale data.
   */
  free(pfn: bigint, order: number): void {
    if (pfn & ((1n << BigInt(order)) - 1n)) throw new InternalError(`free of pfn 0x${pfn.toString(16)} not aligned to order ${order}`);
    const blank = blankPage();
    const tails: Page[] = Array.from({ length: 1 << order }, () => blank);
    this.memmap.setRange(pfn, tails);
    let cur = order;
    let base = pfn;
    while (cur < MAX_ORDER - 1) {
      const buddy = base ^ (1n << BigInt(cur));
      if (buddy < this.memmap.minPfn || buddy + (1n << BigInt(cur)) > this.memmap.maxPfn) break;
      const bp = this.memmap.get(buddy);
      if (!this.isBuddyHead(bp, cur)) break;
      this.listDel(this.lruVirt(buddy));
      this.addNrFree(cur, -1n);
      this.memmap.set(buddy, blankPage());
      base = buddy < base ? buddy : base;
      cur++;
    }
    this.markBuddyHead(base, cur);
    this.listAdd(this.lruVirt(base), this.headVirt(cur));
    this.addNrFree(cur, 1n);
  }

  /**
   * Frees the `count` frames from `pfn` on as the largest aligned blocks
   * that tile them (__free_pages_core of a range, as memblock_free_all does
   * at boot): a block a call instead of a call a frame.
   */
  freeRange(pfn: bigint, count: number): void {
    let at = Number(pfn);
    const end = at + count;
    while (at < end) {
      let order = 0;
      while (order + 1 < MAX_ORDER && at % (2 ** (order + 1)) === 0 && at + 2 ** (order + 1) <= end) order++;
      this.free(BigInt(at), order);
      at += 2 ** order;
    }
  }

  /** The free block containing `pfn`, as [head, order], or null when the frame is not free. */
  private blockOf(pfn: bigint): [bigint, number] | null {
    for (let o = 0; o < MAX_ORDER; o++) {
      const head = pfn & ~((1n << BigInt(o)) - 1n);
      if (this.isBuddyHead(this.memmap.get(head), o)) return [head, o];
    }
    return null;
  }

  /**
   * Takes specific free frames out of the allocator (as reserve_bootmem or
   * alloc_contig_range would): each free block holding one is unlinked and
   * its other frames go back as the largest blocks that avoid the taken
   * ones. Taken frames become PG_reserved.
   */
  claim(pfns: readonly bigint[]): void {
    const sorted = [...new Set(pfns)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const countIn = (start: bigint, end: bigint): number => {
      let lo = 0;
      let hi = sorted.length;
      while (lo < hi) { const m = (lo + hi) >> 1; if (sorted[m] < start) lo = m + 1; else hi = m; }
      let n = 0;
      for (let i = lo; i < sorted.length && sorted[i] < end; i++) n++;
      return n;
    };
    const reserved = { ...blankPage(), flags: pageFlag(PG_reserved), _refcount: 1 };
    const giveBack = (start: bigint, order: number): void => {
      const size = 1n << BigInt(order);
      if (countIn(start, start + size) === 0) {
        this.markBuddyHead(start, order);
        this.listAdd(this.lruVirt(start), this.headVirt(order));
        this.addNrFree(order, 1n);
      } else if (order === 0) {
        this.memmap.set(start, reserved);
      } else {
        giveBack(start, order - 1);
        giveBack(start + size / 2n, order - 1);
      }
    };
    for (let i = 0; i < sorted.length;) {
      const block = this.blockOf(sorted[i]);
      if (!block) throw new InternalError(`claim of pfn 0x${sorted[i].toString(16)}, which is not free`);
      const [head, order] = block;
      this.listDel(this.lruVirt(head));
      this.addNrFree(order, -1n);
      this.memmap.set(head, blankPage());
      giveBack(head, order);
      const end = head + (1n << BigInt(order));
      while (i < sorted.length && sorted[i] < end) i++;
    }
  }

  /**
   * Every free block as [pfn, order], walking the lists in RAM (for tests
   * and checks). Bounded by what the lists can hold (no more blocks of an
   * order than frames / 2^order); an entry outside mem_map, a block not
   * marked free, or a list that does not come back is named.
   */
  freeBlocks(): Array<[bigint, number]> {
    const out: Array<[bigint, number]> = [];
    for (let o = 0; o < MAX_ORDER; o++) {
      const head = this.headVirt(o);
      const bad = (why: string): never => {
        throw new CorruptDumpError(`free_area[${o}].free_list: ${why}`, { struct: 'free_area', field: 'free_list' });
      };
      const most = this.memmap.maxPfn >> BigInt(o);
      let e = this.rd(head);
      let n = 0n;
      while (e !== head) {
        const off = this.kernel.pa(e) - LRU_OFFSET - this.memmap.pagePhys(this.memmap.minPfn);
        if (off < 0n || off % BigInt(page.size) !== 0n || off / BigInt(page.size) >= this.memmap.frames) bad(`entry ${hex(e)} is not the lru of a struct page in mem_map`);
        const pfn = this.pfnOfLru(e);
        if (!this.isBuddyHead(this.memmap.get(pfn), o)) bad(`pfn ${hex(pfn)} on the list is not a free block of order ${o}`);
        out.push([pfn, o]);
        if (++n > most) bad(`more than the ${most} blocks of order ${o} this RAM holds (the list does not come back)`);
        e = this.rd(e);
      }
    }
    return out;
  }
}

/**
 * Splits the free frames [start, end) into the largest naturally aligned
 * power-of-two blocks, as __free_pages_core does at boot.
 */
export function splitIntoBlocks(start: bigint, end: bigint): Array<[bigint, number]> {
  const out: Array<[bigint, number]> = [];
  let pfn = start;
  while (pfn < end) {
    let order = MAX_ORDER - 1;
    while (order > 0 && ((pfn & ((1n << BigInt(order)) - 1n)) !== 0n || pfn + (1n << BigInt(order)) > end)) order--;
    out.push([pfn, order]);
    pfn += 1n << BigInt(order);
  }
  return out;
}
