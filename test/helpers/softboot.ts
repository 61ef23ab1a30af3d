/**
 * Shared steps and checks of the soft-boot pipeline tests: arming as
 * `lkcd config` does, a ground-truth snapshot of RAM taken at the crash
 * hooks, DESIGN section 5 invariants 1 to 3 as lists of violations, and the
 * theoretical capacity bound of an in-place dump.
 */
import crypto from 'node:crypto';
import { PAGE_SIZE, PAGE_SIZE_N, type PhysicalRam } from '../../src/machine/index.js';
import {
  bootRegion, BuddyAllocator, buildFileNames, forEachPageType, inRanges, kexecFrames, kexecLoad, MemMap,
  PAGE_OFFSET, readKernelImageFile, type PageType, type PhysRange, type RunningSystem,
} from '../../src/kernel/index.js';
import {
  armDump, crashMachine, dumperFrames, InplaceDump, makePageCodec, nextKernelConfig, parseCrashdumpArg, pendingDump, readBlock,
  savedDumpFrames, dump_page, RECORD_DESCS_PER_PAGE, STAGE1_HEADER_LEN, DUMP_FLAGS_DISKDUMP, DUMP_FLAGS_SOFTBOOT, DUMP_MAP_SZ, type CrashOutcome, type DumpCompress,
} from '../../src/dump/index.js';
import { changedFrames, frameHashes, hashOf, pageHash } from './ramdiff.js';

/** dump_page header bytes in front of every record (u64 dp_address, u32 dp_size, u32 dp_flags). */
export const DUMP_PAGE_HEADER_BYTES = dump_page.size;

/** Dump-level mask bit of each page type (DUMP_MASK_KERN 2, DUMP_MASK_USED 4, DUMP_MASK_UNUSED 8). */
export const PASS_BY_TYPE: Record<PageType, number> = { reserved: 2, slab: 2, kernel: 2, cache: 4, anon: 4, free: 8 };
export const MASK_KERN = 2;

/** Direct-map address of a physical address, and back. */
export const va = (phys: bigint): bigint => PAGE_OFFSET + phys;
export const pa = (addr: bigint): bigint => addr - PAGE_OFFSET;
export const hexs = (n: bigint): string => `0x${n.toString(16)}`;

/** Loads the running release's image into the kexec slot with `cmdline`, as `kexec -l` does. */
export function loadKexec(sys: RunningSystem, cmdline: string): void {
  const memmap = new MemMap(sys.kernel);
  const image = readKernelImageFile(buildFileNames(sys.root.bootDir, sys.kernel.release).vmlinuz);
  kexecLoad(sys.kernel, new BuddyAllocator(sys.kernel, memmap), memmap, image, cmdline);
  sys.ram.flush();
}

/** Arms the dump and preloads kexec with crashdump=<addr>, as `lkcd config` does. Returns the block's address. */
export function armAndLoad(sys: RunningSystem, level: number, compress: DumpCompress): bigint {
  const { addr } = armDump(sys.kernel, { active: true, level, flags: DUMP_FLAGS_SOFTBOOT | DUMP_FLAGS_DISKDUMP, compress, panicTimeout: 5 });
  loadKexec(sys, `root=/dev/vda1 ro crashdump=${hexs(addr)}`);
  return addr;
}

/** The running kernel's command line (/proc/cmdline). */
export function procCmdline(sys: RunningSystem): string {
  return sys.kernel.readBytes('boot_command_line').toString('latin1').replace(/\0.*$/s, '');
}

/**
 * RAM as the dump must show it, taken at the beforeDump hook: a hash per
 * frame, the dump-level mask of each frame's type (0 for the dumper's own
 * frames, which no dump holds), the frames the reboot needs, the boot region.
 */
export interface Snapshot {
  hashes: Buffer;
  /** PASS_BY_TYPE of each pfn, or 0 for a frame the dumper owns. */
  mask: Uint8Array;
  types: PageType[];
  kexec: Set<bigint>;
  dumper: Set<bigint>;
  boot: PhysRange[];
  maxPfn: bigint;
}

export function takeSnapshot(sys: RunningSystem, blockPhys: bigint): Snapshot {
  const ram = sys.ram;
  const maxPfn = ram.size / PAGE_SIZE_N;
  const owned = dumperFrames(ram, readBlock(ram, blockPhys), blockPhys, []);
  const mask = new Uint8Array(Number(maxPfn));
  const types: PageType[] = new Array(Number(maxPfn));
  const dumper = new Set<bigint>();
  forEachPageType(new MemMap(sys.kernel), (pfn, t) => {
    types[Number(pfn)] = t;
    if (owned.has(pfn)) dumper.add(pfn);
    else mask[Number(pfn)] = PASS_BY_TYPE[t];
  });
  return {
    hashes: frameHashes(ram), mask, types, kexec: new Set(kexecFrames(sys.kernel)), dumper,
    boot: bootRegion(ram.size, nextKernelConfig(sys.kernel)), maxPfn,
  };
}

/** Opens the saved dump from the booted kernel's crashdump= alone, as the new kernel finds it. */
export function openFromCmdline(sys: RunningSystem): InplaceDump {
  const arg = parseCrashdumpArg(procCmdline(sys));
  if (!arg || arg.value === null) throw new Error(`no crashdump= on the command line '${procCmdline(sys)}'`);
  return InplaceDump.open(sys.ram, pa(arg.value));
}

const isIn = (ranges: Array<[bigint, bigint]>) => (pfn: bigint): boolean => ranges.some(([a, b]) => pfn >= a && pfn < b);

/**
 * Invariant 1 on a saved dump against the snapshot: every saved page equals
 * its frame before the crash; every page the dump's passes select is saved
 * or listed missing; nothing else is saved; a dump not marked truncated
 * lists nothing missing. `sample` checks the content of only that many
 * evenly spaced saved pages; `skipContent` leaves pages out of the content
 * check (the caller checks them its own way). Returns the violations (empty when it holds).
 */
export function invariant1(dump: InplaceDump, snap: Snapshot, opts: { sample?: number; skipContent?: (pfn: bigint) => boolean } = {}): string[] {
  const bad: string[] = [];
  const pages = dump.pages();
  const stride = opts.sample && pages.length > opts.sample ? Math.floor(pages.length / opts.sample) : 1;
  for (let i = 0; i < pages.length; i += stride) {
    const pfn = pages[i];
    if (opts.skipContent?.(pfn)) continue;
    if (!pageHash(dump.readPage(pfn)).equals(hashOf(snap.hashes, pfn))) bad.push(`saved page ${hexs(pfn)} differs from RAM before the crash`);
  }
  const missing = dump.missingRanges();
  const isMissing = isIn(missing);
  // dumped_passes: the level the dump set out to save; dropped passes count as selected (their pages must be listed missing).
  const selectedMask = dump.block.level;
  let saved = 0n;
  for (let p = 0n; p < snap.maxPfn; p++) {
    const m = snap.mask[Number(p)];
    if (m === 0 || !(m & selectedMask)) {
      if (dump.has(p)) bad.push(`pfn ${hexs(p)} (${snap.types[Number(p)]}) is not selected but was saved`);
      continue;
    }
    if (dump.has(p)) saved++;
    else if (!isMissing(p)) bad.push(`selected pfn ${hexs(p)} (${snap.types[Number(p)]}) is neither saved nor listed missing`);
  }
  if (saved !== dump.block.pages_saved) bad.push(`${saved} selected pages saved, block says ${dump.block.pages_saved}`);
  if (BigInt(pages.length) !== dump.block.pages_saved) bad.push(`${pages.length} records, block says ${dump.block.pages_saved}`);
  if (!dump.block.truncated && missing.length > 0) bad.push(`dump not marked truncated lists ${missing.length} missing ranges`);
  return bad;
}

/**
 * Invariant 2 for a crash: every frame stage 1 changed is outside the boot
 * region and the kexec image, and was free, already saved, not selected,
 * or the dumper's own.
 */
export function invariant2(dump: InplaceDump, snap: Snapshot, afterStage1: Buffer): string[] {
  const bad: string[] = [];
  for (const pfn of changedFrames(snap.hashes, afterStage1)) {
    if (inRanges(pfn * PAGE_SIZE_N, snap.boot)) bad.push(`pfn ${hexs(pfn)} in the boot region changed`);
    if (snap.kexec.has(pfn)) bad.push(`pfn ${hexs(pfn)} of the kexec image changed`);
    const m = snap.mask[Number(pfn)];
    const ok = snap.dumper.has(pfn) || m === PASS_BY_TYPE.free || dump.has(pfn) || !(m & dump.block.dumped_passes);
    if (!ok) bad.push(`pfn ${hexs(pfn)} (${snap.types[Number(pfn)]}) changed but was neither free nor saved`);
  }
  return bad;
}

/** Invariant 3: no frame of the saved dump changed between `before` and `after` (a boot, a second crash). */
export function invariant3(ram: PhysicalRam, blockPhys: bigint, before: Buffer, after: Buffer): string[] {
  const frames = new Set(savedDumpFrames(ram, blockPhys, readBlock(ram, blockPhys)));
  return changedFrames(before, after).filter((pfn) => frames.has(pfn)).map((pfn) => `dump frame ${hexs(pfn)} changed`);
}

/** The capacity bound of an in-place dump, computed from RAM at the crash (see bounds.test.ts). */
export interface Bound {
  totalFrames: bigint;
  /** Frames that may hold dump data: all, minus the boot region, the dumper's own frames and the kexec image. */
  availableFrames: bigint;
  /** Frames the whole dump needs (framesFor). */
  neededFrames: bigint;
  /** The same for the kern pass alone. */
  kernNeededFrames: bigint;
  selectedPages: bigint;
  recordBytes: bigint;
}

/**
 * Frames a dump of `records` page records totalling `recordBytes` needs:
 * header, records, end record, one map page per DUMP_MAP_SZ data pages,
 * and the record table (one descriptor per record, RECORD_DESCS_PER_PAGE
 * to a frame). The indirect map pages are the dumper's own, allocated when
 * the dump is armed, so they count against "available", not here.
 */
export function framesFor(recordBytes: bigint, records: bigint): bigint {
  const bytes = BigInt(STAGE1_HEADER_LEN) + recordBytes + BigInt(DUMP_PAGE_HEADER_BYTES);
  const data = (bytes + PAGE_SIZE_N - 1n) / PAGE_SIZE_N;
  const table = (records + BigInt(RECORD_DESCS_PER_PAGE) - 1n) / BigInt(RECORD_DESCS_PER_PAGE);
  return data + (data + BigInt(DUMP_MAP_SZ) - 1n) / BigInt(DUMP_MAP_SZ) + table;
}

/**
 * Computes the bound for dump level mask `levelMask` with compression
 * `compress`: each selected page's record is 16 bytes plus its LKCD
 * per-page encoding by the same codec stage 1 uses.
 */
export function theoreticalBound(sys: RunningSystem, blockPhys: bigint, levelMask: number, compress: DumpCompress): Bound {
  const ram = sys.ram;
  const total = ram.size / PAGE_SIZE_N;
  const owned = dumperFrames(ram, readBlock(ram, blockPhys), blockPhys, []);
  const kexec = new Set(kexecFrames(sys.kernel));
  const boot = bootRegion(ram.size, nextKernelConfig(sys.kernel));
  const codec = makePageCodec(compress);
  const scratch = new Uint8Array(PAGE_SIZE);
  const page = Buffer.alloc(PAGE_SIZE);
  let unavailable = 0n;
  let recordBytes = 0n;
  let kernBytes = 0n;
  let kernPages = 0n;
  let selected = 0n;
  try {
    forEachPageType(new MemMap(sys.kernel), (pfn, t) => {
      const mine = owned.has(pfn);
      if (mine || kexec.has(pfn) || inRanges(pfn * PAGE_SIZE_N, boot)) unavailable++;
      if (mine || !(PASS_BY_TYPE[t] & levelMask)) return;
      ram.readInto(pfn * PAGE_SIZE_N, page);
      const rec = BigInt(DUMP_PAGE_HEADER_BYTES + codec.encode(page, scratch).size);
      recordBytes += rec;
      if (PASS_BY_TYPE[t] === MASK_KERN) { kernBytes += rec; kernPages++; }
      selected++;
    });
  } finally {
    codec.close();
  }
  return {
    totalFrames: total, availableFrames: total - unavailable, neededFrames: framesFor(recordBytes, selected),
    kernNeededFrames: framesFor(kernBytes, kernPages), selectedPages: selected, recordBytes,
  };
}

/** Deterministic encrypted-like bytes (AES-128-CTR keystream), for pages that do not compress. */
export function incompressibleStream(seed: number): (n: number) => Buffer {
  const key = crypto.createHash('sha256').update(`lkcd-test-${seed}`).digest().subarray(0, 16);
  const cipher = crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return (n) => cipher.update(Buffer.alloc(n));
}

export interface Crash {
  sys: RunningSystem;
  out: CrashOutcome;
  addr: bigint;
  blockPhys: bigint;
  snap: Snapshot;
  bound?: Bound;
  afterStage1: Buffer;
  afterBoot: Buffer;
}

/** Crashes an armed machine, taking the snapshot (and optionally the bound) at the beforeDump hook. */
export function crash(sys: RunningSystem, addr: bigint, message: string, withBound?: { levelMask: number; compress: DumpCompress }): Crash {
  const blockPhys = pa(addr);
  let snap!: Snapshot;
  let bound: Bound | undefined;
  let afterStage1!: Buffer;
  const out = crashMachine(sys, { kind: 'panic', message }, {
    beforeDump: (x) => {
      snap = takeSnapshot(x, blockPhys);
      if (withBound) bound = theoreticalBound(x, blockPhys, withBound.levelMask, withBound.compress);
    },
    afterDump: (x) => { afterStage1 = frameHashes(x.ram); },
  });
  return { sys: out.system, out, addr, blockPhys, snap, bound, afterStage1, afterBoot: frameHashes(out.system.ram) };
}

/** Invariants 1 to 3 on a crash, as one list of violations; the dump is read from crashdump= alone. */
export function invariants(c: Crash, opts: { sample?: number } = {}): string[] {
  const bad: string[] = [];
  if (c.out.after !== 'kexec') bad.push(`rebooted by ${c.out.after}, not kexec`);
  if (pendingDump(c.sys.kernel)?.addr !== c.addr) bad.push('the new kernel did not reserve the dump');
  const dump = openFromCmdline(c.sys);
  try {
    bad.push(...invariant1(dump, c.snap, opts));
    bad.push(...invariant2(dump, c.snap, c.afterStage1));
    bad.push(...invariant3(c.sys.ram, c.blockPhys, c.afterStage1, c.afterBoot));
    if (!dump.block.truncated && dump.block.pages_missing !== 0n) bad.push(`complete dump says ${dump.block.pages_missing} pages missing`);
  } finally {
    dump.close();
  }
  return bad;
}
