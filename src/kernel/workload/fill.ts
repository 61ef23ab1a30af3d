import { InternalError } from '../../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../../machine/index.js';
import {
  PAGE_MAPPING_ANON, PG_dirty, PG_lru, PG_private, PG_referenced, PG_slab, PG_swapbacked, PG_uptodate,
  PAGE_MAPCOUNT_NONE, pageFlag, TASK_INTERRUPTIBLE, TASK_RUNNING,
} from '../constants.js';
import { Kernel } from '../kernel.js';
import { blankPage, type BuddyAllocator } from '../mm/buddy.js';
import type { MemMap } from '../mm/mem_map.js';
import { printk, advanceClock } from '../printk.js';
import { Prng } from '../prng.js';
import type { Page } from '../structs/page.js';
import type { TaskManager } from '../tasks.js';
import { CONTENT_CLASSES, type ContentClass, type ContentGenerator } from './content.js';
import type { Profile } from './profiles.js';

type Use = Exclude<keyof Profile['share'], 'stale'>;

/** Pages the workload leaves free for arming the dump: a ~2.2 MiB kexec image, the driver's ~100 pages, slack. */
export const DUMP_ARM_RESERVE_PAGES = 768;

/** How a use shows in mem_map and what its pages hold. */
const USES: Record<Use, { content: ContentClass; kind: 'cache' | 'anon' | 'slab' | 'kernel' }> = {
  cache: { content: 'page_cache', kind: 'cache' },
  anon: { content: 'anon_heap', kind: 'anon' },
  database: { content: 'database', kind: 'anon' },
  incompressible: { content: 'incompressible', kind: 'anon' },
  zero: { content: 'zero', kind: 'anon' },
  slab: { content: 'slab', kind: 'slab' },
  kernel: { content: 'slab', kind: 'kernel' },
};

const F_CACHE = pageFlag(PG_lru) | pageFlag(PG_uptodate);
const F_ANON = pageFlag(PG_lru) | pageFlag(PG_uptodate) | pageFlag(PG_swapbacked);

/** Blocks per segment of a PendingContent list (6 bytes each: 96 KiB a segment). */
const PENDING_SEGMENT = 1 << 14;

/**
 * Blocks allocated whose frames are still to be filled: first pfn, order and
 * content class, in typed segments that grow one at a time (about one block
 * per ten pages, so ~0.6 bytes a frame of RAM).
 */
class PendingContent {
  private readonly pfns: Uint32Array[] = [];
  private readonly orders: Uint8Array[] = [];
  private readonly classes: Uint8Array[] = [];
  private count = 0;
  /** One bit per class index of CONTENT_CLASSES: some block has it. */
  private seen = 0;

  push(pfn: bigint, order: number, cls: ContentClass): void {
    // RAM is at most 16 GiB: every pfn fits 32 bits with room to spare.
    if (pfn >= 1n << 32n) throw new InternalError(`workload block at pfn 0x${pfn.toString(16)} is beyond 32-bit pfns`);
    const seg = Math.floor(this.count / PENDING_SEGMENT);
    if (seg === this.pfns.length) {
      this.pfns.push(new Uint32Array(PENDING_SEGMENT));
      this.orders.push(new Uint8Array(PENDING_SEGMENT));
      this.classes.push(new Uint8Array(PENDING_SEGMENT));
    }
    const i = this.count % PENDING_SEGMENT;
    this.pfns[seg][i] = Number(pfn);
    this.orders[seg][i] = order;
    const c = CONTENT_CLASSES.indexOf(cls);
    this.classes[seg][i] = c;
    this.seen |= 1 << c;
    this.count++;
  }

  /** Calls `each` for every block of class `cls`, in the order they were allocated. */
  forEachOf(cls: ContentClass, each: (pfn: number, order: number) => void): void {
    const c = CONTENT_CLASSES.indexOf(cls);
    for (let k = 0; k < this.count; k++) {
      const seg = Math.floor(k / PENDING_SEGMENT);
      const i = k % PENDING_SEGMENT;
      if (this.classes[seg][i] === c) each(this.pfns[seg][i], this.orders[seg][i]);
    }
  }

  has(cls: ContentClass): boolean {
    return (this.seen & (1 << CONTENT_CLASSES.indexOf(cls))) !== 0;
  }
}

export interface FillStats {
  pagesByUse: Record<Use | 'stale', bigint>;
}

/**
 * Puts a workload's memory in place through the allocator: blocks of a few
 * pages to a few hundred KiB, each for one use, their struct pages set as
 * the kernel sets them and their frames filled with that use's content.
 */
export class WorkloadFiller {
  private readonly rng: Prng;
  private slabPfns: bigint[] = [];
  /** The pages of one block as they are filled, reused (a block is at most 1 << 6 pages). */
  private block = Buffer.alloc(64 * PAGE_SIZE);
  private fileIndex = 0n;

  constructor(
    readonly kernel: Kernel,
    readonly memmap: MemMap,
    readonly buddy: BuddyAllocator,
    readonly content: ContentGenerator,
    seed: number,
  ) {
    this.rng = new Prng(seed ^ 0xf111);
  }

  /** A plausible kernel pointer to an object in a slab page the workload owns. */
  private objectPointer(): bigint {
    if (this.slabPfns.length === 0) return Kernel.__va(0x1000000n) + 0x40n;
    const pfn = this.slabPfns[this.rng.below(this.slabPfns.length)];
    return Kernel.__va(pfn * PAGE_SIZE_N) + BigInt(this.rng.below(64) * 64);
  }

  private pageFor(kind: 'cache' | 'anon' | 'slab' | 'kernel', anonVma: bigint, mappingObj: bigint): Page {
    const p = blankPage();
    p._refcount = 1;
    switch (kind) {
      case 'cache':
        p.flags = F_CACHE | (this.rng.below(4) === 0 ? pageFlag(PG_referenced) : 0n)
          | (this.rng.below(16) === 0 ? pageFlag(PG_dirty) : 0n)
          | (this.rng.below(8) === 0 ? pageFlag(PG_private) : 0n);
        p.mapping = mappingObj;
        p.index = this.fileIndex++;
        p._mapcount = this.rng.below(3) === 0 ? 0 : PAGE_MAPCOUNT_NONE;
        break;
      case 'anon':
        p.flags = F_ANON;
        p.mapping = anonVma | PAGE_MAPPING_ANON;
        p.index = this.fileIndex++;
        p._mapcount = 0;
        break;
      case 'slab':
        p.flags = pageFlag(PG_slab);
        p.mapping = mappingObj; // page->slab_cache
        break;
      case 'kernel':
        break;
    }
    return p;
  }

  /**
   * Allocates and fills `pages` pages for one use; returns the blocks it
   * took. With `pending`, the frames are filled later (writeContent).
   */
  allocateUse(use: Use, pages: bigint, pending?: PendingContent): Array<[bigint, number]> {
    const { content, kind } = USES[use];
    const taken: Array<[bigint, number]> = [];
    let left = pages;
    while (left > 0n) {
      // Mostly small blocks, sometimes large ones: fragmentation like a running system.
      let order = this.rng.below(10) < 7 ? this.rng.below(3) : 3 + this.rng.below(4);
      while (order > 0 && (1n << BigInt(order)) > left) order--;
      let pfn = this.buddy.alloc(order);
      while (pfn === null && order > 0) pfn = this.buddy.alloc(--order);
      if (pfn === null) break;
      const n = 1 << order;
      const anonVma = this.objectPointer() & ~7n;
      const mappingObj = this.objectPointer() & ~7n;
      const pagesArr: Page[] = [];
      for (let i = 0; i < n; i++) pagesArr.push(this.pageFor(kind, anonVma, mappingObj));
      this.memmap.setRange(pfn, pagesArr);
      if (pending) pending.push(pfn, order, content);
      else this.writeBlock(content, pfn, n);
      if (kind === 'slab') for (let i = 0; i < n; i++) this.slabPfns.push(pfn + BigInt(i));
      taken.push([pfn, order]);
      left -= BigInt(n);
    }
    return taken;
  }

  /** Fills the n frames from `pfn` with the class's content. */
  private writeBlock(cls: ContentClass, pfn: bigint, n: number): void {
    if (this.block.length < n * PAGE_SIZE) this.block = Buffer.alloc(n * PAGE_SIZE);
    const buf = this.block.subarray(0, n * PAGE_SIZE);
    this.content.fill(cls, pfn, buf);
    this.kernel.ram.write(pfn * PAGE_SIZE_N, buf);
  }

  /**
   * Fills the pending blocks one content class at a time, letting go of
   * each class's pool before the next is built: one pool in memory instead
   * of four. A frame's bytes depend only on (seed, class, pfn), and the
   * blocks are distinct frames, so the order of the writes changes nothing.
   */
  private writeContent(pending: PendingContent): void {
    for (const cls of CONTENT_CLASSES) {
      if (!pending.has(cls)) continue;
      pending.forEachOf(cls, (pfn, order) => this.writeBlock(cls, BigInt(pfn), 1 << order));
      this.content.releasePool(cls);
    }
  }

  /**
   * Fills memory per the profile. Order matters for realism: slab first (the
   * kernel's objects exist before files are cached), then the stale share,
   * used and freed at the end so free memory is scattered and holds old data.
   */
  fill(profile: Profile, tasks: TaskManager): FillStats {
    // Room an administrator keeps for crash dumping (like a crashkernel= reservation): the kexec
    // image `lkcd config` preloads and the dump driver's own pages, so even a small busy machine
    // can be armed. The kernel would otherwise have to reclaim page cache first.
    const floor = BigInt(DUMP_ARM_RESERVE_PAGES);
    const free = this.buddy.freePages();
    const available = free > floor ? free - floor : 0n;
    const want = (share: number): bigint => BigInt(Math.floor(Number(available) * share));
    const stats: FillStats = { pagesByUse: { cache: 0n, anon: 0n, database: 0n, incompressible: 0n, zero: 0n, slab: 0n, kernel: 0n, stale: 0n } };
    const order: Use[] = ['slab', 'kernel', 'cache', 'anon', 'database', 'incompressible', 'zero'];
    const staleBlocks: Array<[bigint, number]> = [];
    const staleUses: Use[] = ['anon', 'cache', 'incompressible', 'database'];
    // Interleave: allocate each use in a few rounds, with stale memory between, so uses mix in RAM.
    const rounds = 4;
    // Nothing reads or writes the frames of these blocks until they are freed or handed to
    // tasks below, so their content is written after the allocations, class by class.
    const pending = new PendingContent();
    for (let r = 0; r < rounds; r++) {
      for (const use of order) {
        const n = want(profile.share[use]) / BigInt(rounds);
        const blocks = this.allocateUse(use, n, pending);
        for (const [, o] of blocks) stats.pagesByUse[use] += 1n << BigInt(o);
      }
      const staleUse = staleUses[r % staleUses.length];
      staleBlocks.push(...this.allocateUse(staleUse, want(profile.share.stale) / BigInt(rounds), pending));
    }
    this.writeContent(pending);
    // Free the stale blocks in random order: their frames keep the data.
    for (let i = staleBlocks.length - 1; i > 0; i--) {
      const j = this.rng.below(i + 1);
      [staleBlocks[i], staleBlocks[j]] = [staleBlocks[j], staleBlocks[i]];
    }
    for (const [pfn, o] of staleBlocks) {
      this.buddy.free(pfn, o);
      stats.pagesByUse.stale += 1n << BigInt(o);
    }
    const userPages = stats.pagesByUse.anon + stats.pagesByUse.database + stats.pagesByUse.incompressible + stats.pagesByUse.zero;
    profile.processes.forEach((comm, i) => {
      const rss = userPages / BigInt(profile.processes.length);
      tasks.create({
        comm, state: i === 0 ? TASK_RUNNING : TASK_INTERRUPTIBLE, kthread: false, rssPages: rss,
        mm: this.objectPointer(), ip: this.kernel.sym(i % 2 ? 'do_syscall_64' : 'schedule').address,
      });
      advanceClock(this.kernel, BigInt(20_000_000 + this.rng.below(400_000_000)));
      printk(this.kernel, `systemd[1]: Started ${comm}.service.`);
    });
    return stats;
  }
}
