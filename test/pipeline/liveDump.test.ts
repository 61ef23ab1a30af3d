/**
 * Alt+SysRq+d (DESIGN section 3 "live dump", section 5 invariant 2): stage 1
 * runs into free frames only while the system keeps running. The dump reads
 * back equal to RAM as it was when the key was pressed; no frame the running
 * kernel or its processes use changes, except the allocator's own records of
 * the free frames the dump takes (their struct pages and the free lists);
 * those frames leave the allocator; and a crash while the dump still awaits
 * writeout does not overwrite it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DumpError, viewOf } from '../../src/codec/index.js';
import { MachineRoot, PAGE_SIZE, PAGE_SIZE_N } from '../../src/machine/index.js';
import {
  BuddyAllocator, closeSystem, kexecFrames, MemMap, openSystem, page, PAGE_BUDDY_MAPCOUNT_VALUE, PAGE_MAPCOUNT_NONE,
  pageFlag, PG_reserved, powerOn, pt_regs, runWorkload, systemDmesg, systemStatus, type RunningSystem,
} from '../../src/kernel/index.js';
import {
  crashMachine, InplaceDump, liveDump, nextKernelConfig, pendingDump, procDumpValues, readBlock, runStage1, savedDumpFrames,
  DUMP_COMPRESS_GZIP, DUMP_LEVEL_ALL_RAM, DUMP_LEVEL_USED, type DumpCompress, type Stage1Result,
} from '../../src/dump/index.js';
import { changedFrames, frameHashes, hashOf, pageHash } from '../helpers/ramdiff.js';
import { makeTempDir, MiB, removeTempDir } from '../helpers/machine.js';
import { armAndLoad, hexs, invariant1, invariant3, pa, takeSnapshot, type Snapshot } from '../helpers/softboot.js';

interface LiveCase { mem: bigint; profile: string; seed: number; level: number; compress: DumpCompress }

const cases: Array<[string, LiveCase]> = [
  ['32M idle ALL_RAM gzip', { mem: 32n * MiB, profile: 'idle', seed: 21, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_GZIP }],
  ['64M database USED gzip', { mem: 64n * MiB, profile: 'database', seed: 22, level: DUMP_LEVEL_USED, compress: DUMP_COMPRESS_GZIP }],
];

/** Copies of the bytes the allocator may legitimately change: all of mem_map, and the pages holding contig_page_data. */
interface AllocatorBytes { memmap: Buffer; cpdPages: Buffer }

function allocatorBytes(sys: RunningSystem, memmapPhys: bigint, memmapBytes: number, cpdFirstPfn: bigint, cpdPages: number): AllocatorBytes {
  return {
    memmap: Buffer.from(sys.ram.read(memmapPhys, memmapBytes)),
    cpdPages: Buffer.from(sys.ram.read(cpdFirstPfn * PAGE_SIZE_N, cpdPages * PAGE_SIZE)),
  };
}

const F_RESERVED = pageFlag(PG_reserved);

describe.each(cases)('Alt+SysRq+d on %s', (name, c) => {
  let dir: string;
  let root: MachineRoot;
  let sys: RunningSystem;
  let addr: bigint;
  let blockPhys: bigint;
  let snap!: Snapshot;
  let afterHashes!: Buffer;
  let before!: AllocatorBytes;
  let after!: AllocatorBytes;
  let result!: { dump: Stage1Result; console: string[] };
  let memmapPhys: bigint;
  let memmapBytes: number;
  let memmapPfns: [bigint, bigint];
  let cpdStart: bigint;
  let cpdEnd: bigint;
  let cpdFirstPfn: bigint;
  let cpdPageCount: number;

  const inMemmap = (pfn: bigint): boolean => pfn >= memmapPfns[0] && pfn < memmapPfns[1];
  const inCpd = (pfn: bigint): boolean => pfn >= cpdFirstPfn && pfn < cpdFirstPfn + BigInt(cpdPageCount);
  const isAllocatorFrame = (pfn: bigint): boolean => inMemmap(pfn) || inCpd(pfn);

  beforeAll(() => {
    dir = makeTempDir('livedump');
    root = new MachineRoot(dir);
    sys = powerOn(root, { mem: c.mem, profile: c.profile, seed: c.seed });
    addr = armAndLoad(sys, c.level, c.compress);
    blockPhys = pa(addr);
    const mm = new MemMap(sys.kernel);
    memmapPhys = mm.phys;
    memmapBytes = Number(mm.maxPfn) * page.size;
    memmapPfns = [memmapPhys / PAGE_SIZE_N, (memmapPhys + BigInt(memmapBytes) + PAGE_SIZE_N - 1n) / PAGE_SIZE_N];
    cpdStart = sys.kernel.symPhys('contig_page_data');
    cpdEnd = cpdStart + sys.kernel.sym('contig_page_data').size;
    cpdFirstPfn = cpdStart / PAGE_SIZE_N;
    cpdPageCount = Number((cpdEnd + PAGE_SIZE_N - 1n) / PAGE_SIZE_N - cpdFirstPfn);
    result = liveDump(sys, {
      beforeDump: (x) => {
        snap = takeSnapshot(x, blockPhys);
        before = allocatorBytes(x, memmapPhys, memmapBytes, cpdFirstPfn, cpdPageCount);
      },
      afterDump: (x) => {
        afterHashes = frameHashes(x.ram);
        after = allocatorBytes(x, memmapPhys, memmapBytes, cpdFirstPfn, cpdPageCount);
      },
    });
  });

  afterAll(() => {
    if (sys) closeSystem(sys);
    if (dir) removeTempDir(dir);
  });

  it('saves a dump that reads back equal to RAM when the key was pressed; every selected page saved or listed missing', () => {
    expect(result.console.join('\n')).toMatch(/^dump: saved \d+ pages/m);
    const dump = InplaceDump.open(sys.ram, blockPhys);
    try {
      expect(dump.block.live).toBe(1);
      expect(dump.pages().length).toBeGreaterThan(0);
      expect(BigInt(dump.pages().length)).toBe(result.dump.pagesSaved);
      expect(invariant1(dump, snap, { skipContent: isAllocatorFrame })).toEqual([]);
    } finally {
      dump.close();
    }
  });

  it('saved mem_map and contig_page_data pages show the allocator as it was when the key was pressed', () => {
    // The dump takes its frames from the allocator while it runs: what it saves of mem_map and the
    // free lists must still be the state at the key press, not its own allocations.
    const dump = InplaceDump.open(sys.ram, blockPhys);
    try {
      const differ: string[] = [];
      let checked = 0;
      for (const pfn of dump.pages()) {
        if (!isAllocatorFrame(pfn)) continue;
        checked++;
        if (!pageHash(dump.readPage(pfn)).equals(hashOf(snap.hashes, pfn))) {
          differ.push(`${inCpd(pfn) ? 'contig_page_data' : 'mem_map'} page ${hexs(pfn)} was saved after the dump changed it`);
        }
      }
      expect(checked).toBeGreaterThan(0);
      expect(differ, `${differ.length} of ${checked} allocator pages differ`).toEqual([]);
    } finally {
      dump.close();
    }
  });

  it('changes no frame in use, except mem_map entries of free frames and the free lists in contig_page_data', () => {
    const bad: string[] = [];
    for (const pfn of changedFrames(snap.hashes, afterHashes)) {
      if (snap.types[Number(pfn)] === 'free' || snap.dumper.has(pfn) || inMemmap(pfn) || inCpd(pfn)) continue;
      bad.push(`frame ${hexs(pfn)} (${snap.types[Number(pfn)]}) changed`);
    }
    expect(bad.slice(0, 20), `${bad.length} frames in use changed`).toEqual([]);

    // contig_page_data's page(s): only bytes of contig_page_data itself (free_area lists and counts) may differ.
    const base = cpdFirstPfn * PAGE_SIZE_N;
    const outside: string[] = [];
    for (let i = 0; i < before.cpdPages.length; i++) {
      const phys = base + BigInt(i);
      if (before.cpdPages[i] !== after.cpdPages[i] && (phys < cpdStart || phys >= cpdEnd)) outside.push(hexs(phys));
    }
    expect(outside.slice(0, 20), 'bytes changed next to contig_page_data').toEqual([]);

    // mem_map: an entry may change only if its frame was free; it is then either taken by the dump
    // (PG_reserved, one reference) or still free (a buddy head or a blank tail, list pointers aside).
    const block = readBlock(sys.ram, blockPhys);
    const dumpFrames = new Set(savedDumpFrames(sys.ram, blockPhys, block));
    const bv = viewOf(before.memmap);
    const av = viewOf(after.memmap);
    const entries: string[] = [];
    let taken = 0;
    for (let pfn = 0; pfn < Number(snap.maxPfn); pfn++) {
      const off = pfn * page.size;
      if (before.memmap.compare(after.memmap, off, off + page.size, off, off + page.size) === 0) continue;
      const p = BigInt(pfn);
      const was = page.decode(bv, off);
      const now = page.decode(av, off);
      if (snap.types[pfn] !== 'free') { entries.push(`struct page of in-use frame ${hexs(p)} (${snap.types[pfn]}) changed: ${JSON.stringify(was, big)} -> ${JSON.stringify(now, big)}`); continue; }
      if (dumpFrames.has(p)) {
        taken++;
        if (!(now.flags & F_RESERVED) || now._refcount !== 1) entries.push(`dump frame ${hexs(p)} is not PG_reserved with one reference: ${JSON.stringify(now, big)}`);
        continue;
      }
      const stillFree = now.flags === 0n && now.mapping === 0n && now._refcount === 0
        && (now._mapcount === PAGE_BUDDY_MAPCOUNT_VALUE || now._mapcount === PAGE_MAPCOUNT_NONE);
      if (!stillFree) entries.push(`free frame ${hexs(p)} not taken by the dump now reads ${JSON.stringify(now, big)}`);
    }
    expect(entries.slice(0, 20), `${entries.length} bad mem_map changes`).toEqual([]);
    expect(taken, 'the dump took free frames').toBeGreaterThan(0);
  });

  it('takes its frames out of the allocator', () => {
    const block = readBlock(sys.ram, blockPhys);
    const frames = new Set([...savedDumpFrames(sys.ram, blockPhys, block), ...snap.dumper]);
    const buddy = new BuddyAllocator(sys.kernel, new MemMap(sys.kernel));
    const stillFree: string[] = [];
    for (const [start, order] of buddy.freeBlocks()) {
      for (let pfn = start; pfn < start + (1n << BigInt(order)); pfn++) if (frames.has(pfn)) stillFree.push(hexs(pfn));
    }
    expect(stillFree.slice(0, 20), `${stillFree.length} dump frames are still on the free lists`).toEqual([]);
  });

  it('leaves the machine running: it reopens, logs the dump, runs its workload without touching the dump', () => {
    closeSystem(sys);
    sys = openSystem(root);
    const status = systemStatus(sys);
    expect(status.ram_bytes).toBe(c.mem);
    const log = systemDmesg(sys);
    expect(log).toMatch(/\] sysrq: Dump\n/);
    expect(log).toMatch(new RegExp(`sysrq: Dump: live dump of ${result.dump.pagesSaved} pages saved in \\d+ frames at ${hexs(addr)}`));
    expect(procDumpValues(sys.kernel).addr).toBe(hexs(addr));
    const beforeRun = frameHashes(sys.ram);
    const ran = runWorkload(sys, 3);
    expect(ran.allocated).toBeGreaterThan(0n);
    sys.ram.flush();
    expect(invariant3(sys.ram, blockPhys, beforeRun, frameHashes(sys.ram))).toEqual([]);
    const dump = InplaceDump.open(sys.ram, blockPhys);
    try {
      expect(invariant1(dump, snap)).toEqual([]);
    } finally {
      dump.close();
    }
  });

  it('stage 1 refuses to run over the pending dump and leaves it untouched', () => {
    const beforeTry = frameHashes(sys.ram);
    const panic = { message: 'second crash', regs: pt_regs.zero(), currentTask: 0n, timeSec: 0n, timeUsec: 0n };
    let err: unknown;
    try {
      runStage1(sys.kernel, blockPhys, kexecFrames(sys.kernel), { mode: 'panic', panic, nextKernel: nextKernelConfig(sys.kernel) });
    } catch (e) {
      err = e;
    }
    sys.ram.flush();
    expect(changedFrames(beforeTry, frameHashes(sys.ram))).toEqual([]);
    expect(err).toBeInstanceOf(DumpError);
    expect((err as DumpError).code).toBe('USAGE');
    expect((err as DumpError).message).toMatch(/awaiting writeout/);
    expect((err as DumpError).message, 'the block is named by its address, in hex').toContain(hexs(addr));
  });

  it('a panic with the live dump pending takes no new dump, reboots into the loaded kernel, which finds the live dump intact', () => {
    let atCrash!: Buffer;
    let afterStage1!: Buffer;
    const out = crashMachine(sys, { kind: 'panic', message: `panic after sysrq-d on ${name}` }, {
      beforeDump: (x) => { atCrash = frameHashes(x.ram); },
      afterDump: (x) => { afterStage1 = frameHashes(x.ram); },
    });
    sys = out.system;
    expect(out.dump).toBeNull();
    expect(out.noDumpReason).toMatch(/awaits writeout|pending/);
    expect(changedFrames(atCrash, afterStage1)).toEqual([]);
    expect(out.after).toBe('kexec');
    expect(pendingDump(sys.kernel)?.addr).toBe(addr);
    expect(invariant3(sys.ram, blockPhys, atCrash, frameHashes(sys.ram))).toEqual([]);
    const dump = InplaceDump.open(sys.ram, blockPhys);
    try {
      expect(dump.block.live).toBe(1);
      expect(invariant1(dump, snap)).toEqual([]);
    } finally {
      dump.close();
    }
  });

});

function big(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `0x${v.toString(16)}` : v;
}
