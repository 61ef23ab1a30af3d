import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultError } from '../../../src/codec/index.js';
import { MachineRoot, PhysicalRam, readState } from '../../../src/machine/index.js';
import {
  bootKernel, bootLayout, bootRegion, BuddyAllocator, buildKernel, configForRam, countPageTypes, defaultCmdline,
  loadImage, MemMap, readKernelImageFile, runWorkload, type RunningSystem,
} from '../../../src/kernel/index.js';
import { findKernelTextElf } from '../../../src/kernel/workload/elf_text.js';
import { makeTempDir, MiB, powerOnTemp, removeTempDir, type TempMachine } from '../../helpers/machine.js';

// Linux x86_64 constants, restated here so the test does not derive them from src.
const START_KERNEL_MAP = 0xffffffff80000000n;
const PAGE_OFFSET = 0xffff888000000000n;
const PAGE = 4096n;
const STRUCT_PAGE = 64n;
const BUDDY_MAPCOUNT = -129; // PAGE_BUDDY_MAPCOUNT_VALUE, ~PG_buddy with PG_buddy 0x80
const MAX_ORDER = 11;
const FREE_AREA_SIZE = 24n; // list_head free_list + nr_free

interface MachineSpec { label: string; mem: bigint; profile: string; seed: number; base: bigint; release: string }

const SPECS: MachineSpec[] = [
  { label: '16M idle', mem: 16n * MiB, profile: 'idle', seed: 11, base: 0x200000n, release: '5.4.0-lkcd-lowmem' },
  { label: '64M database', mem: 64n * MiB, profile: 'database', seed: 12, base: 0x1000000n, release: '5.4.0-lkcd' },
];

const machines = new Map<bigint, TempMachine>();

beforeAll(() => {
  for (const s of SPECS) machines.set(s.mem, powerOnTemp({ mem: s.mem, profile: s.profile, seed: s.seed }, 'boot'));
});
afterAll(() => {
  for (const m of machines.values()) m.destroy();
});

function sysOf(spec: MachineSpec): RunningSystem {
  return machines.get(spec.mem)!.sys;
}

function u64At(b: Uint8Array, at: number): bigint {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).readBigUInt64LE(at);
}

describe.each(SPECS)('$label machine', (spec) => {
  it(`runs the ${spec.release} build at 0x${spec.base.toString(16)}`, () => {
    const sys = sysOf(spec);
    expect(sys.state.cpu.kernel_base).toBe(spec.base);
    expect(sys.kernel.release).toBe(spec.release);
    // The same facts as the hardware and the kernel keep them.
    const onDisk = readState(new MachineRoot(machines.get(spec.mem)!.dir));
    expect(onDisk?.power).toBe('on');
    expect(onDisk?.ram_bytes).toBe(spec.mem);
    expect(onDisk?.cpu?.kernel_base).toBe(spec.base);
    expect(fs.existsSync(path.join(machines.get(spec.mem)!.dir, 'boot', `vmlinuz-${spec.release}`))).toBe(true);
    // init_uts_ns.name.release at offset 4 (kref) + 130 (sysname, nodename).
    const uts = sys.kernel.mem.read('virt', sys.kernel.sym('init_uts_ns').address + 4n + 130n, 65);
    expect(Buffer.from(uts.subarray(0, uts.indexOf(0))).toString('latin1')).toBe(spec.release);
    expect(sys.ram.size).toBe(spec.mem);
  });

  it('the kernel image is mapped at __START_KERNEL_map + its physical address', () => {
    const sys = sysOf(spec);
    const { kernel, ram } = sys;
    for (const name of ['init_uts_ns', '__log_buf', 'contig_page_data', 'init_top_pgt', '_text']) {
      const s = kernel.sym(name);
      const pa = s.address - START_KERNEL_MAP;
      const n = Number(s.size > 0n ? s.size : 64n);
      expect(pa).toBeGreaterThanOrEqual(spec.base);
      const viaPageTables = Buffer.from(kernel.mem.read('virt', s.address, n));
      expect(viaPageTables.equals(ram.read(pa, n))).toBe(true);
    }
    // Non-vacuous: the text mapping shows real content (the banner is in the log buffer).
    const log = Buffer.from(kernel.mem.read('virt', kernel.sym('__log_buf').address, 128 * 1024)).toString('latin1');
    expect(log).toContain(`Linux version ${spec.release}`);
    // _text holds the image header: the first u64 is its magic "LKCDKRNL".
    expect(Buffer.from(kernel.mem.read('virt', kernel.sym('_text').address, 8)).toString('latin1')).toBe('LKCDKRNL');
  });

  it('the direct map maps PAGE_OFFSET + pa to pa for all of RAM', () => {
    const { kernel, ram } = sysOf(spec);
    const last = spec.mem - PAGE;
    const probes: Array<[bigint, number]> = [
      [0n, 4096], [0x1000n, 100], [spec.base, 4096], [0x1ff000n, 0x2000], // across a 2 MiB boundary
      [spec.mem / 2n - 8n, 16], [last, 4096], [spec.mem - 8n, 8],
    ];
    for (const [pa, n] of probes) {
      expect(Buffer.from(kernel.mem.read('virt', PAGE_OFFSET + pa, n)).equals(ram.read(pa, n))).toBe(true);
    }
    // mem_map is a direct-map pointer to the frame right after the image.
    const memMapVa = u64At(kernel.mem.read('virt', kernel.sym('mem_map').address, 8), 0);
    const layout = bootLayout(spec.mem, { release: spec.release, physicalStart: spec.base });
    expect(memMapVa).toBe(PAGE_OFFSET + layout.memMapPhys);
    expect(Buffer.from(kernel.mem.read('virt', memMapVa, 4096)).equals(ram.read(layout.memMapPhys, 4096))).toBe(true);
  });

  it('addresses the page tables do not map fault with the virtual address', () => {
    const { kernel } = sysOf(spec);
    for (const va of [START_KERNEL_MAP + spec.mem + 0x200000n, 0x400000n, 0xffffc90000000000n]) {
      let err: unknown;
      try { kernel.mem.read('virt', va, 8); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(FaultError);
      expect((err as FaultError).where.address).toBe(va);
    }
  });

  it('mem_map and the free lists agree after boot and after the workload runs', () => {
    const sys = sysOf(spec);
    checkMemMap(sys, spec);
    runWorkload(sys, 3);
    checkMemMap(sys, spec);
  });
});

/** The free blocks, found twice: by walking the lists in RAM, and by scanning mem_map for buddy heads. */
function checkMemMap(sys: RunningSystem, spec: MachineSpec): void {
  const { kernel } = sys;
  const maxPfn = spec.mem / PAGE;
  const rd = (va: bigint): bigint => u64At(kernel.mem.read('virt', va, 8), 0);
  const memMapVa = rd(kernel.sym('mem_map').address);
  expect(rd(kernel.sym('max_pfn').address)).toBe(maxPfn);

  // Scan mem_map through the direct map: heads have _mapcount -129 (offset 48), order in private (offset 40).
  const scanned: Array<[bigint, number]> = [];
  const batch = 4096n;
  for (let pfn = 0n; pfn < maxPfn; pfn += batch) {
    const n = maxPfn - pfn < batch ? maxPfn - pfn : batch;
    const raw = Buffer.from(kernel.mem.read('virt', memMapVa + pfn * STRUCT_PAGE, Number(n * STRUCT_PAGE)));
    for (let i = 0; i < Number(n); i++) {
      if (raw.readInt32LE(i * 64 + 48) === BUDDY_MAPCOUNT) scanned.push([pfn + BigInt(i), Number(raw.readBigUInt64LE(i * 64 + 40))]);
    }
  }

  // Walk each free_area[order].free_list by hand, checking the prev links and nr_free.
  const walked: Array<[bigint, number]> = [];
  const areas = kernel.sym('contig_page_data').address;
  for (let o = 0; o < MAX_ORDER; o++) {
    const head = areas + BigInt(o) * FREE_AREA_SIZE;
    let prev = head;
    let e = rd(head);
    let count = 0n;
    while (e !== head) {
      expect(rd(e + 8n)).toBe(prev);
      const off = e - 8n - memMapVa; // lru is at offset 8 of struct page
      expect(off % STRUCT_PAGE).toBe(0n);
      walked.push([off / STRUCT_PAGE, o]);
      prev = e;
      e = rd(e);
      count++;
      expect(count).toBeLessThanOrEqual(maxPfn);
    }
    expect(rd(head + 8n)).toBe(prev);
    expect(rd(head + 16n)).toBe(count); // nr_free
  }

  const key = ([pfn, o]: [bigint, number]): string => `${pfn}/${o}`;
  const sortBlocks = (xs: Array<[bigint, number]>): string[] => xs.map(key).sort();
  const buddy = new BuddyAllocator(kernel, new MemMap(kernel));
  expect(sortBlocks(walked)).toEqual(sortBlocks(scanned));
  expect(sortBlocks(buddy.freeBlocks())).toEqual(sortBlocks(scanned));
  expect(scanned.length).toBeGreaterThan(0);

  // Blocks are aligned, inside RAM, disjoint, and clear of what the boot reserved.
  const layout = bootLayout(spec.mem, { release: spec.release, physicalStart: spec.base });
  const reserved: Array<[bigint, bigint]> = [[0n, 0x100000n / PAGE], [layout.imageStart / PAGE, layout.earlyEnd / PAGE]];
  const sorted = [...scanned].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  let end = 0n;
  let total = 0n;
  for (const [pfn, o] of sorted) {
    const size = 1n << BigInt(o);
    expect(pfn % size).toBe(0n);
    expect(pfn).toBeGreaterThanOrEqual(end);
    expect(pfn + size).toBeLessThanOrEqual(maxPfn);
    for (const [rs, re] of reserved) expect(pfn + size <= rs || pfn >= re).toBe(true);
    end = pfn + size;
    total += size;
  }
  expect(buddy.freePages()).toBe(total);
  const counts = countPageTypes(new MemMap(kernel));
  expect(counts.free).toBe(total);
  expect(Object.values(counts).reduce((a, b) => a + b, 0n)).toBe(maxPfn);
  // The workload put pages in use, and left some free.
  expect(total).toBeLessThan(maxPfn);
  expect(counts.anon + counts.cache).toBeGreaterThan(0n);
  expect(counts.reserved).toBeGreaterThanOrEqual(layout.earlyEnd / PAGE - layout.imageStart / PAGE);
}

describe('the boot region', () => {
  let dir: string;
  beforeAll(() => { dir = makeTempDir('bootregion'); });
  afterAll(() => removeTempDir(dir));

  /** Every page: 0xA5 bytes, with its pfn at the start and the end. */
  function patternPage(pfn: bigint, out: Buffer, at: number): void {
    out.fill(0xa5, at, at + 4096);
    out.writeBigUInt64LE(pfn, at);
    out.writeBigUInt64LE(~pfn & 0xffffffffffffffffn, at + 4088);
  }

  it.each([['64M', 64n * MiB], ['16M', 16n * MiB]] as const)('a boot on %s of patterned RAM writes only frames inside bootRegion()', (_label, ramBytes) => {
    const config = configForRam(ramBytes);
    const bootDir = path.join(dir, `boot-${ramBytes}`);
    fs.mkdirSync(bootDir, { recursive: true });
    const files = buildKernel(bootDir, config, () => findKernelTextElf());
    const ram = PhysicalRam.create(path.join(dir, `ram-${ramBytes}`), ramBytes);
    try {
      const maxPfn = ramBytes / PAGE;
      const stride = 256n; // pages per 1 MiB write
      const buf = Buffer.alloc(Number(stride * PAGE));
      for (let pfn = 0n; pfn < maxPfn; pfn += stride) {
        for (let i = 0n; i < stride; i++) patternPage(pfn + i, buf, Number(i * PAGE));
        ram.write(pfn * PAGE, buf);
      }
      ram.flush();

      const base = loadImage(ram, readKernelImageFile(files.vmlinuz));
      expect(base).toBe(config.physicalStart);
      bootKernel(ram, base, { cmdline: defaultCmdline(config.release), hostname: 'region', bootTime: 1795000000n, seed: 3 });
      ram.flush();

      const region = bootRegion(ramBytes, config);
      const inside = (pfn: bigint): boolean => region.some((r) => pfn * PAGE >= r.start && (pfn + 1n) * PAGE <= r.end);
      const changed: bigint[] = [];
      const want = Buffer.alloc(4096);
      for (let pfn = 0n; pfn < maxPfn; pfn += stride) {
        const got = ram.read(pfn * PAGE, Number(stride * PAGE));
        for (let i = 0n; i < stride; i++) {
          patternPage(pfn + i, want, 0);
          if (!got.subarray(Number(i * PAGE), Number((i + 1n) * PAGE)).equals(want)) changed.push(pfn + i);
        }
      }
      const outside = changed.filter((pfn) => !inside(pfn)).map((pfn) => `0x${pfn.toString(16)}`);
      expect(outside).toEqual([]);

      // Non-vacuous: the boot did write its image, page tables, log, mem_map and early allocations...
      const layout = bootLayout(ramBytes, config);
      const did = new Set(changed);
      for (const pa of [layout.imageStart, layout.memMapPhys, layout.memMapPhys + layout.memMapBytes - PAGE, layout.earlyStart]) {
        expect(did.has(pa / PAGE)).toBe(true);
      }
      // ...and the region is a small part of RAM, so "inside" means something.
      const regionBytes = region.reduce((a, r) => a + (r.end - r.start), 0n);
      expect(regionBytes).toBeLessThan(ramBytes / 2n);
    } finally {
      ram.close();
    }
  });
});

describe('power-on is deterministic', () => {
  function ramHash(m: TempMachine): string {
    m.sys.ram.flush();
    return createHash('sha256').update(fs.readFileSync(path.join(m.dir, 'lib', 'machine', 'ram'))).digest('hex');
  }

  it('the same seed, profile and size in two roots give byte-identical RAM; another seed does not', () => {
    const opts = { mem: 16n * MiB, profile: 'database', seed: 77 };
    const runs = [powerOnTemp(opts, 'det-a'), powerOnTemp(opts, 'det-b'), powerOnTemp({ ...opts, seed: 78 }, 'det-c')];
    try {
      const [a, b, c] = runs.map(ramHash);
      expect(runs[0].dir).not.toBe(runs[1].dir);
      expect(a).toBe(b);
      expect(c).not.toBe(a);
    } finally {
      for (const m of runs) m.destroy();
    }
  });
});
