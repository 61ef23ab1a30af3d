/**
 * The workload's frames after power-on: it fills them class by class after
 * all its allocations (one content pool held at a time), so this checks,
 * against a ContentGenerator of the test's own, that every frame mem_map
 * says the workload holds has exactly the bytes its class gives for its
 * PFN: page cache (PG_lru, a file mapping) the page_cache class; anonymous
 * pages (PG_lru, PAGE_MAPPING_ANON) one of the anonymous classes of the
 * profile; the workload's slab pages (PG_slab) the slab class. A write lost,
 * put at another PFN or of another class would show as a frame that none
 * of them gives.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAGE_MAPPING_ANON, PG_lru, PG_slab, __START_KERNEL_map } from '../../../src/kernel/constants.js';
import { MemMap } from '../../../src/kernel/mm/mem_map.js';
import { ContentGenerator, type ContentClass } from '../../../src/kernel/workload/content.js';
import { PAGE_SIZE } from '../../../src/machine/index.js';
import { MiB, powerOnTemp, type TempMachine } from '../../helpers/machine.js';

const SEED = 7;
const ANON_CLASSES: ContentClass[] = ['anon_heap', 'database', 'incompressible', 'zero'];

let m: TempMachine;
beforeAll(() => { m = powerOnTemp({ mem: 48n * MiB, profile: 'database', seed: SEED }, 'workload-fill'); });
afterAll(() => m?.destroy());

describe('workload content after power-on', () => {
  it('every cache, anonymous and slab frame of the workload holds its class\'s bytes for its PFN', () => {
    const memmap = new MemMap(m.sys.kernel);
    const gen = new ContentGenerator({ seed: SEED });
    const frame = new Uint8Array(PAGE_SIZE);
    const want = new Uint8Array(PAGE_SIZE);
    const matches = (cls: ContentClass, pfn: bigint): boolean => {
      gen.fill(cls, pfn, want);
      return Buffer.from(frame).equals(Buffer.from(want));
    };
    const counts = { cache: 0, anon: 0, slab: 0 };
    const anonBy = new Map<ContentClass, number>();
    const wrong: string[] = [];
    memmap.scan(memmap.minPfn, memmap.frames, (pfn, view, off) => {
      const flags = view.getBigUint64(off, true);
      const mapping = view.getBigUint64(off + 24, true);
      const lru = (flags >> BigInt(PG_lru)) & 1n;
      const slab = (flags >> BigInt(PG_slab)) & 1n;
      if (!lru && !slab) return;
      if (slab) {
        // The kernel's own kmem caches (task structs...) name a kmem_cache in the kernel image as
        // page->slab_cache; the workload's slab pages name an object in the direct map.
        if (mapping >= __START_KERNEL_map) return;
        m.sys.ram.readInto(pfn * BigInt(PAGE_SIZE), frame);
        counts.slab++;
        if (!matches('slab', pfn)) wrong.push(`slab ${pfn}`);
      } else if (mapping & PAGE_MAPPING_ANON) {
        m.sys.ram.readInto(pfn * BigInt(PAGE_SIZE), frame);
        counts.anon++;
        const cls = ANON_CLASSES.find((c) => matches(c, pfn));
        if (cls) anonBy.set(cls, (anonBy.get(cls) ?? 0) + 1);
        else wrong.push(`anon ${pfn}`);
      } else {
        m.sys.ram.readInto(pfn * BigInt(PAGE_SIZE), frame);
        counts.cache++;
        if (!matches('page_cache', pfn)) wrong.push(`cache ${pfn}`);
      }
    });
    expect(wrong.slice(0, 5)).toEqual([]);
    // The database profile: a buffer pool, some cache, some slab.
    expect(counts.anon).toBeGreaterThan(3000);
    expect(counts.cache).toBeGreaterThan(1000);
    expect(counts.slab).toBeGreaterThan(200);
    // Anonymous shares of the profile: database 0.5, heaps 0.08, incompressible 0.04, zero 0.03. An
    // unwritten frame reads as zero, so a lost class would show as far more zero pages than 0.03 gives.
    expect((anonBy.get('database') ?? 0) / counts.anon).toBeGreaterThan(0.6);
    expect((anonBy.get('zero') ?? 0) / counts.anon).toBeLessThan(0.15);
    expect(anonBy.get('anon_heap') ?? 0).toBeGreaterThan(0);
    expect(anonBy.get('incompressible') ?? 0).toBeGreaterThan(0);
  });
});
