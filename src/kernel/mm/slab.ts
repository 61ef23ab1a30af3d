import { InternalError } from '../../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../../machine/index.js';
import { PAGE_MAPCOUNT_NONE, PG_slab, pageFlag } from '../constants.js';
import { Kernel } from '../kernel.js';
import { kmem_cache, type KmemCache } from '../structs/kmem_cache.js';
import { blankPage } from './buddy.js';
import type { MemMap } from './mem_map.js';

/** Where a subsystem gets whole pages: memblock during boot, the buddy allocator after. */
export interface PageSource {
  allocPages(order: number, what: string): bigint;
}

/** SLAB_POISON's free-object byte (include/linux/poison.h POISON_FREE). */
export const POISON_FREE = 0x6b;

/**
 * A slab cache whose descriptor is the kernel variable `cacheSym` (struct
 * kmem_cache): objects of one size carved from whole pages, the current
 * slab page and the next free slot kept in the descriptor, in RAM.
 */
export class SlabCache {
  constructor(
    readonly kernel: Kernel,
    readonly memmap: MemMap,
    readonly pages: PageSource,
    readonly cacheSym: string,
  ) {}

  private read(): KmemCache {
    return this.kernel.readStruct(kmem_cache, this.cacheSym);
  }

  /** kmem_cache_create: an empty cache of `objectSize`-byte objects named `name`. */
  create(name: string, objectSize: number): void {
    if (objectSize < 1 || objectSize > PAGE_SIZE) throw new InternalError(`slab cache ${name}: object size ${objectSize} does not fit a page`);
    this.kernel.writeStruct(kmem_cache, this.cacheSym, {
      name, object_size: objectSize, objects_per_slab: Math.floor(PAGE_SIZE / objectSize),
      cur_slab_pfn: 0n, cur_index: 0, nr_slabs: 0,
    });
  }

  /** kmem_cache_alloc: the kernel virtual address of a new object (poisoned, not zeroed). */
  alloc(): bigint {
    const c = this.read();
    if (c.objects_per_slab === 0) throw new InternalError(`slab cache ${this.cacheSym} was never created`);
    if (c.cur_slab_pfn === 0n || c.cur_index >= c.objects_per_slab) {
      const pfn = this.pages.allocPages(0, `${c.name} slab`);
      const p = blankPage();
      p.flags = pageFlag(PG_slab);
      p.mapping = this.kernel.sym(this.cacheSym).address; // page->slab_cache
      p._refcount = 1;
      p._mapcount = PAGE_MAPCOUNT_NONE;
      this.memmap.set(pfn, p);
      // Fresh slab pages are poisoned free objects, as a debug kernel leaves them.
      this.kernel.ram.write(pfn * PAGE_SIZE_N, Buffer.alloc(PAGE_SIZE, POISON_FREE));
      c.cur_slab_pfn = pfn;
      c.cur_index = 0;
      c.nr_slabs++;
    }
    const addr = Kernel.__va(c.cur_slab_pfn * PAGE_SIZE_N) + BigInt(c.cur_index * c.object_size);
    c.cur_index++;
    this.kernel.writeStruct(kmem_cache, this.cacheSym, c);
    return addr;
  }
}
