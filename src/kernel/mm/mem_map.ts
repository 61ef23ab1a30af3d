import { viewOf } from '../../codec/index.js';
import { PAGE_OFFSET } from '../constants.js';
import { Kernel } from '../kernel.js';
import { page, type Page } from '../structs/page.js';

/** struct pages read or written per chunk when scanning mem_map. */
const SCAN_BATCH = 4096;

/**
 * The FLATMEM mem_map array in RAM: one 64-byte struct page per frame
 * from min_low_pfn (ARCH_PFN_OFFSET: 0 for a normal boot, the start of
 * the crashkernel region for a capture kernel) to max_pfn, found through
 * the kernel's `mem_map` pointer.
 */
export class MemMap {
  readonly phys: bigint;
  readonly minPfn: bigint;
  readonly maxPfn: bigint;

  constructor(readonly kernel: Kernel) {
    this.phys = kernel.pa(kernel.readU64('mem_map'));
    this.minPfn = kernel.readU64('min_low_pfn');
    this.maxPfn = kernel.readU64('max_pfn');
  }

  /** Frames that have a struct page. */
  get frames(): bigint {
    return this.maxPfn - this.minPfn;
  }

  pagePhys(pfn: bigint): bigint {
    return this.phys + (pfn - this.minPfn) * BigInt(page.size);
  }
  /** The struct page pointer of a frame (direct-map address, as pfn_to_page gives). */
  pageVirt(pfn: bigint): bigint {
    return PAGE_OFFSET + this.pagePhys(pfn);
  }
  /** The frame a struct page pointer (or a pointer into one) belongs to. */
  pfnOfPageVirt(vaddr: bigint): bigint {
    return (this.kernel.pa(vaddr) - this.phys) / BigInt(page.size) + this.minPfn;
  }

  get(pfn: bigint): Page {
    return this.kernel.readPhysStruct(page, this.pagePhys(pfn));
  }

  /** page->flags alone, without decoding the rest of the struct page. */
  flagsOf(pfn: bigint): bigint {
    return this.kernel.ram.readU64(this.pagePhys(pfn) + BigInt(page.offsetOf.flags));
  }
  set(pfn: bigint, value: Page): void {
    this.kernel.writePhysStruct(page, this.pagePhys(pfn), value);
  }

  /** Writes consecutive struct pages starting at `pfn` in one RAM write. */
  setRange(pfn: bigint, values: Page[]): void {
    const buf = new Uint8Array(values.length * page.size);
    const view = viewOf(buf);
    values.forEach((v, i) => page.encode(v, view, i * page.size));
    this.kernel.ram.write(this.pagePhys(pfn), buf);
  }

  /**
   * Calls `fn` for each struct page in [start, start+count), reading mem_map
   * in batches; `fn` gets the raw view and the byte offset of the entry so a
   * scan over millions of frames decodes only the fields it needs.
   */
  scan(start: bigint, count: bigint, fn: (pfn: bigint, view: DataView, offset: number) => void): void {
    let pfn = start;
    const end = start + count;
    while (pfn < end) {
      const n = Number(end - pfn < BigInt(SCAN_BATCH) ? end - pfn : BigInt(SCAN_BATCH));
      const raw = this.kernel.ram.read(this.pagePhys(pfn), n * page.size);
      const view = viewOf(raw);
      for (let i = 0; i < n; i++) fn(pfn + BigInt(i), view, i * page.size);
      pfn += BigInt(n);
    }
  }
}

export const PAGE_FIELD = page.offsetOf;
