import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MachineRoot, PAGE_SIZE_N } from '../../src/machine/index.js';
import {
  BuddyAllocator, bootRegion, closeSystem, forEachPageType, inRanges, kexecFrames, kexecLoad, Kernel, MemMap, powerOn,
  readKernelImageFile, buildFileNames, type PageType, type RunningSystem,
} from '../../src/kernel/index.js';
import {
  armDump, crashMachine, DUMP_COMPRESS_GZIP, DUMP_COMPRESS_NONE, DUMP_COMPRESS_RLE, DUMP_FLAGS_DISKDUMP, DUMP_FLAGS_SOFTBOOT,
  DUMP_LEVEL_ALL_RAM, DUMP_LEVEL_KERN, DUMP_LEVEL_USED, InplaceDump, nextKernelConfig, parseCrashdumpArg, pendingDump,
  savedDumpFrames, readBlock, dumperFrames, type DumpCompress,
} from '../../src/dump/index.js';
import type { PfnBitmap } from '../../src/dump/writer/pfn_set.js';
import { changedFrames, frameHashes, hashOf, pageHash } from '../helpers/ramdiff.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-softboot-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Scenario { mem: bigint; profile: string; seed: number; level: number; compress: DumpCompress }

/** Arms the dump, preloads kexec with crashdump=<addr>, as `lkcd config` does. */
export function armAndLoad(sys: RunningSystem, level: number, compress: DumpCompress): bigint {
  const { addr } = armDump(sys.kernel, { active: true, level, flags: DUMP_FLAGS_SOFTBOOT | DUMP_FLAGS_DISKDUMP, compress, panicTimeout: 5 });
  const memmap = new MemMap(sys.kernel);
  const image = readKernelImageFile(buildFileNames(sys.root.bootDir, sys.kernel.release).vmlinuz);
  kexecLoad(sys.kernel, new BuddyAllocator(sys.kernel, memmap), memmap, image, `root=/dev/vda1 ro crashdump=0x${addr.toString(16)}`);
  sys.ram.flush();
  return addr;
}

const PASS_BY_TYPE: Record<PageType, number> = { reserved: 2, slab: 2, kernel: 2, cache: 4, anon: 4, free: 8 };

/** Runs one crash and checks DESIGN invariants 1 to 3 on it. */
function runScenario(name: string, s: Scenario) {
  const root = new MachineRoot(path.join(tmp, name));
  let sys = powerOn(root, { mem: s.mem, profile: s.profile, seed: s.seed });
  const addr = armAndLoad(sys, s.level, s.compress);
  let truth!: Buffer;
  let types!: Map<bigint, PageType>;
  let needed!: Set<bigint>;
  let dumper!: PfnBitmap;
  let boot!: ReturnType<typeof bootRegion>;
  let afterStage1!: Buffer;
  const out = crashMachine(sys, { kind: 'panic', message: `test panic ${name}` }, {
    beforeDump: (x) => {
      truth = frameHashes(x.ram);
      types = new Map();
      forEachPageType(new MemMap(x.kernel), (pfn, t) => types.set(pfn, t));
      needed = new Set(kexecFrames(x.kernel));
      const blockPhys = addr - 0xffff888000000000n;
      dumper = dumperFrames(x.ram, readBlock(x.ram, blockPhys), blockPhys, []);
      boot = bootRegion(x.ram.size, nextKernelConfig(x.kernel));
    },
    afterDump: (x) => { afterStage1 = frameHashes(x.ram); },
  });
  sys = out.system;
  return { sys, out, addr, truth, types, needed, dumper, boot, afterStage1 };
}

const cases: Array<[string, Scenario]> = [
  ['16M idle ALL_RAM gzip', { mem: 16n << 20n, profile: 'idle', seed: 1, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_GZIP }],
  ['32M database USED rle', { mem: 32n << 20n, profile: 'database', seed: 2, level: DUMP_LEVEL_USED, compress: DUMP_COMPRESS_RLE }],
  ['64M fileserver ALL_RAM gzip', { mem: 64n << 20n, profile: 'fileserver', seed: 3, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_GZIP }],
  ['64M random KERN none', { mem: 64n << 20n, profile: 'random', seed: 4, level: DUMP_LEVEL_KERN, compress: DUMP_COMPRESS_NONE }],
  ['128M random ALL_RAM gzip', { mem: 128n << 20n, profile: 'random', seed: 5, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_GZIP }],
];

describe.each(cases)('soft-boot dump: %s', (name, s) => {
  const r = runScenario(name.replace(/\W+/g, '-'), s);
  const blockPhys = r.addr - 0xffff888000000000n;

  it('kexecs into a kernel that found and reserved the dump', () => {
    expect(r.out.after).toBe('kexec');
    expect(r.out.dump).not.toBeNull();
    const pending = pendingDump(r.sys.kernel);
    expect(pending?.addr).toBe(r.addr);
    const cmd = r.sys.kernel.readBytes('boot_command_line').toString('latin1').replace(/\0.*$/s, '');
    expect(parseCrashdumpArg(cmd)?.value).toBe(r.addr);
  });

  it('invariant 1: every saved page equals RAM before the panic; every selected page is saved or listed missing', () => {
    const dump = InplaceDump.open(r.sys.ram, blockPhys);
    for (const pfn of dump.pages()) {
      expect(pageHash(dump.readPage(pfn)).equals(hashOf(r.truth, pfn)), `pfn 0x${pfn.toString(16)}`).toBe(true);
    }
    const missing = dump.missingRanges();
    const isMissing = (pfn: bigint): boolean => missing.some(([a, b]) => pfn >= a && pfn < b);
    const levelMask = dump.block.dumped_passes;
    let saved = 0;
    for (const [pfn, t] of r.types) {
      // The dumper's own frames (config block, maps, bootstrap pages, buffer) are never part of the dump.
      if (!(PASS_BY_TYPE[t] & levelMask) || r.dumper.has(pfn)) {
        expect(dump.has(pfn), `pfn 0x${pfn.toString(16)} (${t}) is not selected but was saved`).toBe(false);
        continue;
      }
      expect(dump.has(pfn) || isMissing(pfn), `selected pfn 0x${pfn.toString(16)} (${t}) neither saved nor listed missing`).toBe(true);
      if (dump.has(pfn)) saved++;
    }
    expect(BigInt(saved)).toBe(dump.block.pages_saved);
    expect(BigInt(dump.pages().length)).toBe(dump.block.pages_saved);
    if (!dump.block.truncated) expect(missing.length).toBe(0);
    dump.close();
  });

  it('invariant 2: stage 1 changed only free or already-saved frames, none in the boot region or needed by kexec', () => {
    const dump = InplaceDump.open(r.sys.ram, blockPhys);
    const changed = changedFrames(r.truth, r.afterStage1);
    for (const pfn of changed) {
      expect(inRanges(pfn * PAGE_SIZE_N, r.boot), `pfn 0x${pfn.toString(16)} in boot region`).toBe(false);
      expect(r.needed.has(pfn), `pfn 0x${pfn.toString(16)} needed by kexec`).toBe(false);
      const t = r.types.get(pfn);
      const ok = t === 'free' || dump.has(pfn) || !(PASS_BY_TYPE[t!] & dump.block.dumped_passes) || r.dumper.has(pfn);
      expect(ok, `pfn 0x${pfn.toString(16)} (${t}) changed but was neither free nor saved`).toBe(true);
    }
    expect(changed.length).toBeGreaterThan(0);
    dump.close();
  });

  it('invariant 3: the boot overwrote no frame of the dump', () => {
    const afterBoot = frameHashes(r.sys.ram);
    const block = readBlock(r.sys.ram, blockPhys);
    const frames = new Set(savedDumpFrames(r.sys.ram, blockPhys, block));
    for (const pfn of changedFrames(r.afterStage1, afterBoot)) {
      expect(frames.has(pfn), `dump frame 0x${pfn.toString(16)} changed during boot`).toBe(false);
    }
  });

  afterAll(() => closeSystem(r.sys));
});

void Kernel;
