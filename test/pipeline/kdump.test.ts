/**
 * kdump on the simulated machine, end to end in one process: a 128 MiB
 * machine with crashkernel=32M loads a capture kernel (kexec -p), panics,
 * and the capture kernel boots in the region. Truths: RAM hashed by the
 * test at the crash (after crash_kexec saved the registers, before the
 * capture kernel ran) and before the panic; the real readers (libkdumpfile,
 * drgn, vmcore-dmesg, makedumpfile, crash) on the /proc/vmcore file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAGE_SIZE_N } from '../../src/machine/index.js';
import {
  isKdumpKernel, MemMap, procVmcore, systemDmesg, type PhysRange, type RunningSystem,
} from '../../src/kernel/index.js';
import { armDump, coldReset, copyProcVmcore, crashMachine, elfVmcoreFormat, exportLiveVmcore, openDump, DUMP_FLAGS_DISKDUMP, DUMP_FLAGS_SOFTBOOT, DUMP_STATE_ARMED, readBlock } from '../../src/dump/index.js';
import { changedFrames, frameHashes } from '../helpers/ramdiff.js';
import { findTool, needs, runTool } from '../helpers/tools.js';
import { kdumpMachine, loadPanicKernel, pieces, ramHashes, readerHashes, region, sha1, systemRamOutside } from '../helpers/kdump.js';
import { loadKexec } from '../helpers/softboot.js';
import type { TempMachine } from '../helpers/machine.js';

const MSG = 'kdump pipeline test';
let m: TempMachine;
let capture: RunningSystem;
let crashRegion: PhysRange;
let ramPieces: Array<[bigint, number]>;
let oldRam: PhysRange[];
let atCrash: string[];
let beforePanic: string[];
let hashesAtCrash: Buffer;
let dmesgBefore: string;
let dmesgAtCrash: string;
let oldImage: PhysRange;
let vmcore: string;

beforeAll(() => {
  m = kdumpMachine({ mem: 128n << 20n, crashkernel: '32M' });
  const sys = m.sys;
  crashRegion = region(sys);
  loadPanicKernel(sys);
  oldRam = systemRamOutside(sys, crashRegion);
  ramPieces = pieces(oldRam);
  dmesgBefore = systemDmesg(sys);
  beforePanic = ramHashes(sys, ramPieces);
  oldImage = { start: sys.kernel.header.physical_start, end: sys.kernel.header.physical_start + sys.kernel.header.image_size };
  const out = crashMachine(sys, { kind: 'panic', message: MSG }, {
    beforeDump(s) {
      atCrash = ramHashes(s, ramPieces);
      hashesAtCrash = frameHashes(s.ram);
      dmesgAtCrash = systemDmesg(s);
    },
  });
  expect(out.after).toBe('kdump');
  capture = out.system;
  m.sys = capture;
  vmcore = path.join(m.dir, 'vmcore');
  copyProcVmcore(capture.kernel, vmcore);
}, 300_000);

afterAll(() => m?.destroy());

describe('the capture kernel boots inside the crashkernel region alone', () => {
  it('changes no frame outside the region (every frame hashed at the crash and after the boot)', () => {
    const changed = changedFrames(hashesAtCrash, frameHashes(capture.ram));
    expect(changed.length).toBeGreaterThan(100);
    const outside = changed.filter((pfn) => pfn * PAGE_SIZE_N < crashRegion.start || pfn * PAGE_SIZE_N >= crashRegion.end);
    expect(outside.map((p) => `0x${p.toString(16)}`)).toEqual([]);
  });

  it('runs relocated at the region\'s base, with its page tables, mem_map and memory inside it', () => {
    const k = capture.kernel;
    expect(isKdumpKernel(k)).toBe(true);
    expect(capture.state.cpu.kernel_base).toBe(crashRegion.start);
    expect(k.physBase).toBe(crashRegion.start - k.header.physical_start);
    expect(capture.state.cpu.cr3 >= crashRegion.start && capture.state.cpu.cr3 < crashRegion.end).toBe(true);
    const mm = new MemMap(k);
    expect(mm.phys >= crashRegion.start && mm.phys < crashRegion.end).toBe(true);
    expect(mm.minPfn).toBe(crashRegion.start / PAGE_SIZE_N);
    expect(mm.maxPfn <= crashRegion.end / PAGE_SIZE_N).toBe(true);
    expect(systemDmesg(capture)).toContain('elfcorehdr=');
  });
});

describe(`the relocated capture kernel is itself readable${needs('vmcore-dmesg', 'crash').reason}`, () => {
  it('its live ELF export gives vmcore-dmesg and crash --log its own log: phys_base and its page tables agree', () => {
    const live = path.join(m.dir, 'capture-live.vmcore');
    exportLiveVmcore(capture, live);
    const own = systemDmesg(capture);
    expect(own).toContain('elfcorehdr=');
    if (findTool('vmcore-dmesg')) expect(runTool('vmcore-dmesg', [live]).stdout).toBe(own);
    if (findTool('crash')) expect(runTool('crash', ['--log', live]).stdout).toBe(own);
  });
});

describe('/proc/vmcore holds the crashed kernel\'s memory', () => {
  it('is an ELF core: one PT_NOTE first, a text PT_LOAD, then System RAM outside the region (readelf)', () => {
    if (!findTool('readelf')) return;
    const r = runTool('readelf', ['-l', '-W', vmcore]);
    expect(r.status, r.stderr).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => /^\s+(NOTE|LOAD)\s/.test(l)).map((l) => l.trim().split(/\s+/));
    expect(rows[0][0]).toBe('NOTE');
    const loads = rows.slice(1).map((x) => ({ paddr: BigInt(x[3]), size: BigInt(x[4]) }));
    expect(loads[0].paddr).toBe(oldImage.start);
    const ram = oldRam.map((x) => ({ paddr: x.start, size: x.end - x.start }));
    expect(loads.slice(1)).toEqual(ram);
    for (const x of rows) expect(x[x.length - 1]).toBe('0');
  });

  it.skipIf(!findTool('/usr/bin/python3'))(`libkdumpfile reads every System RAM page outside the region equal to RAM at the crash; the region and non-RAM are not in it${needs('/usr/bin/python3').reason}`, () => {
    expect(readerHashes('kdumpfile', vmcore, ramPieces, m.dir)).toEqual(atCrash);
    // (Page 0 reads as zeros in libkdumpfile whatever the file holds, so it is not asked.)
    const absent: Array<[bigint, number]> = [[0xa0000n, 4096], [crashRegion.start, 4096], [crashRegion.end - 4096n, 4096]];
    expect(readerHashes('kdumpfile', vmcore, absent, m.dir)).toEqual(['NODATA', 'NODATA', 'NODATA']);
  });

  it.skipIf(!findTool('/usr/bin/python3'))('drgn reads the same physical memory', () => {
    expect(readerHashes('drgn', vmcore, ramPieces, m.dir)).toEqual(atCrash);
  });

  it('our ELF vmcore reader reads the same pages, and the release, node name and CRASHTIME from it', () => {
    const dump = openDump(vmcore, {}, [elfVmcoreFormat]);
    try {
      expect(dump.attrs['file.format']).toBe('elf');
      expect(dump.attrs['linux.uts.release']).toBe('5.4.0-lkcd');
      expect(dump.attrs['linux.uts.nodename']).toBe('lkcd-sim');
      expect(dump.attrs['crash.time'] > 0n).toBe(true);
      const got = ramPieces.map(([a, n]) => sha1(dump.readPage(a / PAGE_SIZE_N).subarray(Number(a % PAGE_SIZE_N), Number(a % PAGE_SIZE_N) + n)));
      expect(got).toEqual(atCrash);
      expect(() => dump.readPage(crashRegion.start / PAGE_SIZE_N)).toThrow(/is not in the dump/);
    } finally {
      dump.close();
    }
  });

  it('differs from RAM before the panic only in the crashed kernel\'s image (the log, crash_notes, VMCOREINFO\'s CRASHTIME)', () => {
    const differ = ramPieces.filter((_, i) => beforePanic[i] !== atCrash[i]).map(([a]) => a);
    expect(differ.length).toBeGreaterThan(0);
    expect(differ.filter((a) => a < oldImage.start || a >= oldImage.end)).toEqual([]);
  });
});

const logTools = needs('vmcore-dmesg', 'makedumpfile', 'crash');
describe(`the old kernel's log, read by real tools from /proc/vmcore${logTools.reason}`, () => {
  it('is machine dmesg from before the panic plus the panic itself', () => {
    expect(dmesgAtCrash.startsWith(dmesgBefore)).toBe(true);
    expect(dmesgAtCrash.slice(dmesgBefore.length)).toMatch(new RegExp(`\\] Kernel panic - not syncing: ${MSG}\\n$`));
  });
  it.skipIf(!findTool('vmcore-dmesg'))('vmcore-dmesg prints it exactly', () => {
    const r = runTool('vmcore-dmesg', [vmcore]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(dmesgAtCrash);
  });
  it.skipIf(!findTool('makedumpfile'))('makedumpfile --dump-dmesg writes it exactly', () => {
    const out = path.join(m.dir, 'mdf-dmesg');
    const r = runTool('makedumpfile', ['--dump-dmesg', vmcore, out]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(fs.readFileSync(out, 'latin1')).toBe(dmesgAtCrash);
  });
  it.skipIf(!findTool('crash'))('crash --log prints it exactly, and crash --osrelease the release', () => {
    const r = runTool('crash', ['--log', vmcore]);
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toBe(dmesgAtCrash);
    expect(runTool('crash', ['--osrelease', vmcore]).stdout).toBe('5.4.0-lkcd\n');
  });
});

describe('the x86 backup of low memory', () => {
  it('/proc/vmcore reads the low 640 KiB from the copy purgatory made: scribbling the original changes nothing', () => {
    const low = ramPieces.filter(([a]) => a < 0xa0000n);
    expect(low.length).toBeGreaterThan(150);
    capture.ram.write(0x1000n, Buffer.alloc(0x9ec00, 0xee));
    const file = path.join(m.dir, 'vmcore.scribbled');
    copyProcVmcore(capture.kernel, file);
    if (findTool('/usr/bin/python3')) expect(readerHashes('kdumpfile', file, low, m.dir)).toEqual(atCrash.slice(0, low.length));
    expect(sha1(capture.ram.read(0x1000n, 4096))).not.toBe(atCrash[0]);
  });
});

describe('kdump and the LKCD soft-boot dump configured together', () => {
  let both: TempMachine;
  beforeAll(() => {
    both = kdumpMachine({ mem: 64n << 20n, crashkernel: '24M', profile: 'idle', seed: 3 }, 'kdump-lkcd');
  });
  afterAll(() => both?.destroy());

  it('kdump wins: crash_kexec runs before the panic notifiers, so stage 1 never runs and the LKCD block stays armed', () => {
    const { addr, blockPhys } = armDump(both.sys.kernel, { active: true, level: 8, flags: DUMP_FLAGS_SOFTBOOT | DUMP_FLAGS_DISKDUMP, compress: 2, panicTimeout: 5 });
    loadKexec(both.sys, `root=/dev/vda1 ro crashdump=0x${addr.toString(16)}`);
    loadPanicKernel(both.sys);
    const out = crashMachine(both.sys, { kind: 'sysrq-c' });
    both.sys = out.system;
    expect(out.after).toBe('kdump');
    expect(out.dump).toBeNull();
    expect(readBlock(both.sys.ram, blockPhys).state).toBe(DUMP_STATE_ARMED);
    expect(procVmcore(both.sys.kernel)).not.toBeNull();
  });

  it('a capture command line whose elfcorehdr= points at cleared RAM: "Kdump: vmcore not initialized", and the boot goes on', () => {
    both.sys = coldReset(both.sys);
    expect(isKdumpKernel(both.sys.kernel)).toBe(true);
    expect(procVmcore(both.sys.kernel)).toBeNull();
    const log = systemDmesg(both.sys);
    expect(log).toContain('Warning: ELF core header: not found (no ELF magic)');
    expect(log).toContain('Kdump: vmcore not initialized');
    expect(log).toContain('Run /sbin/init as init process');
  });
});

