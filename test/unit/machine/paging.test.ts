import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FaultError } from '../../../src/codec/index.js';
import { SegmentMemory, translate } from '../../../src/machine/index.js';

const FC_SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : 0x1cd;

// Entry bits spelled out from the Intel SDM vol. 3A, 4.5 (4-level paging), not taken from src.
const P = 1n << 0n;
const RW = 1n << 1n;
const A = 1n << 5n;
const D = 1n << 6n;
const PS = 1n << 7n; // page size in a PUD/PMD entry; PAT in a PTE
const G = 1n << 8n;
const PAT_LARGE = 1n << 12n; // PAT bit of a 2 MiB / 1 GiB entry: not an address bit
const NX = 1n << 63n;
const TABLE = P | RW | A | D;
const LARGE = P | RW | A | D | PS | G;

const KiB4 = 0x1000n;
const MiB2 = 0x200000n;
const GiB1 = 0x40000000n;

/** Physical pages holding the tables of every vector: PGD at 0x1000 (CR3), then one page per table. */
const CR3 = 0x1000n;
const TABLES_START = 0x1000n;
const TABLES_END = 0x8000n;

/** Recognisable contents of physical byte `pa`. */
function byteAt(pa: bigint): number {
  return Number((pa * 131n + (pa >> 12n) * 7n + 0x5an) & 0xffn);
}

interface Vector {
  id: string;
  /** [physical address of the entry, entry value], PGD first. */
  ptes: Array<[bigint, bigint]>;
  /** Physical ranges with data behind the mapping, [start, length]. */
  data: Array<[bigint, number]>;
  pageSize: bigint;
  pairs: Array<[bigint, bigint]>;
}

/*
 * Table pages: 0x1000 PGD, 0x2000 PUD (kernel text), 0x3000 PMD, 0x4000 PTE,
 * 0x5000 PUD (direct map), 0x6000 PMD, 0x7000 PUD (vmalloc area).
 */
const VECTORS: Vector[] = [
  {
    // 0xffffffff80201000: PGD[511] -> PUD[510] -> PMD[1] -> PTE[1] -> frame 0xa000
    id: '4 KiB page (kernel text)',
    ptes: [
      [0x1000n + 511n * 8n, 0x2000n | TABLE], // PGD[511]
      [0x2000n + 510n * 8n, 0x3000n | TABLE], // PUD[510]
      [0x3000n + 1n * 8n, 0x4000n | TABLE],   // PMD[1]
      [0x4000n + 1n * 8n, 0xa000n | P | NX],  // PTE[1]: NX is not an address bit
      [0x4000n + 2n * 8n, 0xc000n | P | PS],  // PTE[2]: bit 7 is PAT here, still a 4 KiB page
    ],
    data: [[0xa000n, 0x1000], [0xc000n, 0x1000]],
    pageSize: KiB4,
    pairs: [
      [0xffffffff80201000n, 0xa000n],
      [0xffffffff80201abcn, 0xaabcn],
      [0xffffffff80201fffn, 0xafffn],
      // 0xffffffff80202010: PGD[511] -> PUD[510] -> PMD[1] -> PTE[2]
      [0xffffffff80202010n, 0xc010n],
    ],
  },
  {
    // 0xffff888080612345: PGD[273] -> PUD[2] -> PMD[3] (PSE) -> 2 MiB frame 0x1400000 + 0x12345
    id: '2 MiB PSE page (direct map)',
    ptes: [
      [0x1000n + 273n * 8n, 0x5000n | TABLE],            // PGD[273]
      [0x5000n + 2n * 8n, 0x6000n | TABLE],              // PUD[2]
      [0x6000n + 3n * 8n, 0x1400000n | LARGE | PAT_LARGE], // PMD[3], PAT set: base stays 0x1400000
    ],
    data: [[0x1400000n, 0x1000], [0x1412000n, 0x1000], [0x15ff000n, 0x1000]],
    pageSize: MiB2,
    pairs: [
      [0xffff888080600000n, 0x1400000n],
      [0xffff888080612345n, 0x1412345n],
      [0xffff8880807fffffn, 0x15fffffn],
    ],
  },
  {
    // 0xffffc9017ffffabc: PGD[402] -> PUD[5] (PSE) -> 1 GiB frame 0x80000000 + 0x3ffffabc
    id: '1 GiB PSE page',
    ptes: [
      [0x1000n + 402n * 8n, 0x7000n | TABLE],                 // PGD[402]
      [0x7000n + 5n * 8n, 0x80000000n | LARGE | PAT_LARGE | NX], // PUD[5]
    ],
    data: [[0x80000000n, 0x1000], [0xbffff000n, 0x1000]],
    pageSize: GiB1,
    pairs: [
      [0xffffc90140000000n, 0x80000000n],
      [0xffffc90140000abcn, 0x80000abcn],
      [0xffffc9017ffffabcn, 0xbffffabcn],
    ],
  },
];

const LEVEL_NAMES = ['PGD', 'PUD', 'PMD', 'PTE'];

/** Levels a walk of the vector visits: 4 for a 4 KiB page, 3 for 2 MiB, 2 for 1 GiB. */
function levelsOf(v: Vector): number {
  return v.pageSize === KiB4 ? 4 : v.pageSize === MiB2 ? 3 : 2;
}

function hex(x: bigint): string {
  return `0x${x.toString(16)}`;
}

function memoryFor(ptes: Array<[bigint, bigint]>, data: Array<[bigint, number]>): SegmentMemory {
  const tables = new Uint8Array(Number(TABLES_END - TABLES_START));
  const tv = new DataView(tables.buffer);
  for (const [at, value] of ptes) tv.setBigUint64(Number(at - TABLES_START), value, true);
  const segments = [{ phys: TABLES_START, bytes: tables }];
  for (const [start, length] of data) {
    const bytes = new Uint8Array(length);
    for (let i = 0; i < length; i++) bytes[i] = byteAt(start + BigInt(i));
    segments.push({ phys: start, bytes });
  }
  return new SegmentMemory(segments, CR3);
}

function readWord(mem: SegmentMemory): (pa: bigint) => bigint {
  return (pa) => Buffer.from(mem.read('phys', pa, 8)).readBigUInt64LE(0);
}

function expectFault(fn: () => unknown, address: bigint): void {
  let err: unknown;
  try { fn(); } catch (e) { err = e; }
  expect(err).toBeInstanceOf(FaultError);
  expect((err as FaultError).code).toBe('FAULT');
  expect((err as FaultError).where.address).toBe(address);
}

describe.each(VECTORS)('$id', (v) => {
  const mem = memoryFor(v.ptes, v.data);

  it.each(v.pairs.map(([va, pa]) => [hex(va), hex(pa), va, pa] as const))('translates %s to %s', (_a, _b, va, pa) => {
    const t = translate(CR3, va, readWord(mem));
    expect(t.paddr).toBe(pa);
    expect(t.pageSize).toBe(v.pageSize);
  });

  it('visits exactly the entries of the vector, PGD first', () => {
    const [va] = v.pairs[0];
    expect(translate(CR3, va, readWord(mem)).entries).toEqual(v.ptes.slice(0, levelsOf(v)).map(([, e]) => e));
  });

  it('virtual reads return the bytes at the translated physical address', () => {
    for (const [va, pa] of v.pairs) {
      const n = Math.min(16, Number(0x1000n - (pa & 0xfffn)));
      const want = Array.from({ length: n }, (_, i) => byteAt(pa + BigInt(i)));
      expect(Array.from(mem.read('virt', va, n))).toEqual(want);
    }
  });

  it('every offset inside the page keeps its offset (reference walk)', () => {
    const [va0, pa0] = v.pairs[0];
    const base = va0 & ~(v.pageSize - 1n);
    const frame = pa0 & ~(v.pageSize - 1n);
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: v.pageSize - 1n }), (off) => {
      expect(translate(CR3, base + off, readWord(mem)).paddr).toBe(frame + off);
    }), { seed: FC_SEED, numRuns: 200 });
  });

  // Clearing _PAGE_PRESENT at one level, the other bits kept, must fault at that level.
  it.each(v.ptes.slice(0, levelsOf(v)).map((_, level) => [LEVEL_NAMES[level], level] as const))(
    'a non-present %s entry faults with the virtual address', (_name, level) => {
      const ptes = v.ptes.map(([at, e], i): [bigint, bigint] => [at, i === level ? e & ~P : e]);
      const broken = memoryFor(ptes, v.data);
      for (const [va] of v.pairs.slice(0, 2)) {
        expectFault(() => translate(CR3, va, readWord(broken)), va);
        expectFault(() => broken.read('virt', va, 8), va);
        const err = (() => { try { broken.read('virt', va, 8); } catch (e) { return e as FaultError; } return null; })();
        expect(err?.where.space).toBe('virt');
      }
    });
});

describe('walks that leave the vectors', () => {
  const mem = memoryFor(VECTORS.flatMap((v) => v.ptes), VECTORS.flatMap((v) => v.data));

  it('all three vectors coexist in one set of tables', () => {
    for (const v of VECTORS) for (const [va, pa] of v.pairs) expect(translate(CR3, va, readWord(mem)).paddr).toBe(pa);
  });

  it('a read crossing two 4 KiB pages follows each page to its own frame', () => {
    // 0xffffffff80201ff8..0xffffffff80202007: last 8 bytes of frame 0xa000, first 8 of frame 0xc000
    const got = Array.from(mem.read('virt', 0xffffffff80201ff8n, 16));
    const want = [
      ...Array.from({ length: 8 }, (_, i) => byteAt(0xaff8n + BigInt(i))),
      ...Array.from({ length: 8 }, (_, i) => byteAt(0xc000n + BigInt(i))),
    ];
    expect(got).toEqual(want);
  });

  it.each([
    // PGD[0] empty
    [0x0000000000400000n],
    // PGD[511] -> PUD[510] -> PMD[1] -> PTE[3] empty
    [0xffffffff80203000n],
    // PGD[511] -> PUD[510] -> PMD[2] empty
    [0xffffffff80400000n],
    // PGD[273] -> PUD[2] -> PMD[4] empty
    [0xffff888080800000n],
    // PGD[402] -> PUD[6] empty
    [0xffffc90180000000n],
  ].map(([va]) => [hex(va), va] as const))('%s is not mapped', (_name, va) => {
    expectFault(() => translate(CR3, va, readWord(mem)), va);
    expectFault(() => mem.read('virt', va + 0x10n, 4), va + 0x10n);
  });

  it('a read whose second page is not mapped faults at the first byte of that page', () => {
    // 0xffffffff80202ffc: PTE[2] maps, PTE[3] does not
    expectFault(() => mem.read('virt', 0xffffffff80202ffcn, 8), 0xffffffff80203000n);
  });

  it('CR3 flag bits below the table address are ignored', () => {
    const [va, pa] = VECTORS[0].pairs[1];
    expect(translate(CR3 | 0x18n, va, readWord(mem)).paddr).toBe(pa);
  });
});
