import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InternalError } from '../../../src/codec/index.js';
import { BuddyAllocator, MemMap } from '../../../src/kernel/index.js';
import { MiB, powerOnTemp, type TempMachine } from '../../helpers/machine.js';

const FC_SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : 0x1cd;
const MAX_ORDER = 11;
const PG_RESERVED = 1n << 12n; // include/linux/page-flags.h
const BUDDY_MAPCOUNT = -129;

let m: TempMachine;
let buddy: BuddyAllocator;
let memmap: MemMap;

beforeAll(() => {
  m = powerOnTemp({ mem: 32n * MiB, profile: 'idle', seed: 21 }, 'buddy');
  memmap = new MemMap(m.sys.kernel);
  buddy = new BuddyAllocator(m.sys.kernel, memmap);
});
afterAll(() => m?.destroy());

type Block = [bigint, number];

function blockKeys(blocks: Block[]): string[] {
  return blocks.map(([pfn, o]) => `${pfn}/${o}`).sort();
}
function framesOf(blocks: Block[]): Set<bigint> {
  const s = new Set<bigint>();
  for (const [pfn, o] of blocks) for (let i = 0n; i < 1n << BigInt(o); i++) s.add(pfn + i);
  return s;
}
/** pfns whose struct page has PG_reserved, read straight from mem_map in RAM. */
function reservedFrames(): Set<bigint> {
  const out = new Set<bigint>();
  const raw = m.sys.ram.read(memmap.phys, Number(memmap.maxPfn) * 64);
  for (let pfn = 0; pfn < Number(memmap.maxPfn); pfn++) {
    if (raw.readBigUInt64LE(pfn * 64) & PG_RESERVED) out.add(BigInt(pfn));
  }
  return out;
}
function nrFreeByOrder(): bigint[] {
  return Array.from({ length: MAX_ORDER }, (_, o) => buddy.nrFree(o));
}

/** mulberry32: a tiny PRNG independent of the one under test. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function shuffle<T>(xs: T[], next: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function drainOrder0(limit: bigint): bigint[] {
  const got: bigint[] = [];
  for (;;) {
    const pfn = buddy.alloc(0);
    if (pfn === null) return got;
    got.push(pfn);
    if (BigInt(got.length) > limit) throw new Error(`alloc(0) returned more than the ${limit} free frames`);
  }
}

describe('BuddyAllocator on a booted 32M machine', () => {
  it('allocating order-0 pages until none is left hands out every free frame exactly once, never a reserved one', () => {
    const before = buddy.freeBlocks();
    const freeFrames = framesOf(before);
    const reserved = reservedFrames();
    const nFree = buddy.freePages();
    expect(nFree).toBe(BigInt(freeFrames.size));
    expect(nFree).toBeGreaterThan(1000n);
    expect(reserved.size).toBeGreaterThan(0);

    const got = drainOrder0(nFree);
    expect(new Set(got).size).toBe(got.length); // no pfn twice
    expect(BigInt(got.length)).toBe(nFree);
    expect(got.filter((pfn) => reserved.has(pfn))).toEqual([]);
    expect(got.filter((pfn) => !freeFrames.has(pfn))).toEqual([]);
    expect(buddy.freePages()).toBe(0n);
    expect(buddy.freeBlocks()).toEqual([]);
    expect(buddy.alloc(0)).toBeNull();
    expect(buddy.alloc(3)).toBeNull();
    // Each allocated frame is a referenced, unmapped page, no longer a buddy.
    for (const pfn of [got[0], got[got.length >> 1], got[got.length - 1]]) {
      const p = memmap.get(pfn);
      expect(p._refcount).toBe(1);
      expect(p._mapcount).not.toBe(BUDDY_MAPCOUNT);
    }

    for (const pfn of shuffle(got, rng(1))) buddy.free(pfn, 0);
    expect(blockKeys(buddy.freeBlocks())).toEqual(blockKeys(before));
  });

  it('freeing everything in any order coalesces back to the same blocks', () => {
    const before = blockKeys(buddy.freeBlocks());
    const nrBefore = nrFreeByOrder();
    fc.assert(fc.property(fc.integer({ min: 0, max: 0x7fffffff }), (seed) => {
      const next = rng(seed);
      // Mixed orders first, then order 0 until memory is exhausted.
      const taken: Block[] = [];
      for (let i = 0; i < 200; i++) {
        const o = Math.floor(next() * 5);
        const pfn = buddy.alloc(o);
        if (pfn !== null) taken.push([pfn, o]);
      }
      for (const pfn of drainOrder0(buddy.freePages() + 1n)) taken.push([pfn, 0]);
      expect(buddy.freePages()).toBe(0n);
      const frames = taken.flatMap(([pfn, o]) => Array.from({ length: 1 << o }, (_, i) => pfn + BigInt(i)));
      expect(new Set(frames).size).toBe(frames.length);

      for (const [pfn, o] of shuffle(taken, next)) buddy.free(pfn, o);
      expect(blockKeys(buddy.freeBlocks())).toEqual(before);
      expect(nrFreeByOrder()).toEqual(nrBefore);
    }), { seed: FC_SEED, numRuns: 3 });
  });

  it('alloc(order) returns an order-aligned block that was wholly free', () => {
    const before = buddy.freeBlocks();
    const beforeKeys = blockKeys(before);
    const freeFrames = framesOf(before);
    const largest = Math.max(...before.map(([, o]) => o));
    for (let o = 0; o < MAX_ORDER; o++) {
      const pfn = buddy.alloc(o);
      if (o > largest) {
        expect(pfn).toBeNull();
        continue;
      }
      expect(pfn).not.toBeNull();
      const size = 1n << BigInt(o);
      expect(pfn! % size).toBe(0n);
      for (let i = 0n; i < size; i++) expect(freeFrames.has(pfn! + i)).toBe(true);
      const stillFree = framesOf(buddy.freeBlocks());
      for (let i = 0n; i < size; i++) expect(stillFree.has(pfn! + i)).toBe(false);
      expect(buddy.freePages()).toBe(BigInt(freeFrames.size) - size);
      buddy.free(pfn!, o);
      expect(blockKeys(buddy.freeBlocks())).toEqual(beforeKeys);
    }
    expect(largest).toBeGreaterThanOrEqual(5);
  });

  it('freeing a pfn not aligned to its order throws InternalError and changes nothing', () => {
    const pfn = buddy.alloc(2)!;
    expect(pfn).not.toBeNull();
    const blocks = blockKeys(buddy.freeBlocks());
    for (const [bad, o] of [[pfn + 1n, 2], [pfn + 2n, 2], [pfn + 1n, 1]] as const) {
      let err: unknown;
      try { buddy.free(bad, o); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(InternalError);
      expect((err as InternalError).code).toBe('INTERNAL');
    }
    expect(blockKeys(buddy.freeBlocks())).toEqual(blocks);
    buddy.free(pfn, 2);
  });
});
