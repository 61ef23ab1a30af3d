/**
 * Firmware-assisted dump end to end in one process, on a 64 MiB machine
 * booted with fadump=on: register through /sys/kernel/fadump/registered,
 * panic; crash_fadump fills the crash info header, the firmware saves the
 * CPU state, copies boot memory and restarts without clearing RAM; the
 * capture boot runs in boot memory and exports /proc/vmcore.
 * Truths: every frame of RAM hashed at the crash (after crash_fadump,
 * before the firmware), the crashed kernel's dmesg read from RAM then, the
 * panic registers, and the real readers (libkdumpfile, eu-readelf,
 * vmcore-dmesg, makedumpfile, crash) on the /proc/vmcore file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAGE_SIZE_N, PlatformFirmware, type PhysicalRam, readHardwareFile, FW_KERNEL_DUMP_PROPERTY, FW_REGISTRATION, type FadumpMemStruct } from '../../src/machine/index.js';
import {
  countPageTypes, fadumpStatus, pageFlag, PG_reserved, isKdumpKernel, MemMap, procVmcore, readFdm, Sysfs, systemDmesg, systemStatus, readFwDump,
  type PanicInfo, type RunningSystem,
} from '../../src/kernel/index.js';
import { armDump, copyProcVmcore, crashMachine, openDump, readBlock, DUMP_FLAGS_DISKDUMP, DUMP_FLAGS_SOFTBOOT, DUMP_STATE_ARMED } from '../../src/dump/index.js';
import { changedFrames, frameHashes, hashOf } from '../helpers/ramdiff.js';
import { needs, runTool } from '../helpers/tools.js';
import { readerHashes } from '../helpers/kdump.js';
import { loadKexec } from '../helpers/softboot.js';
import { powerOnTemp, MiB, type TempMachine } from '../helpers/machine.js';

const CMDLINE = 'BOOT_IMAGE=/boot/vmlinuz root=/dev/vda1 ro console=ttyS0,115200 panic=5 fadump=on';
const PAGE = Number(PAGE_SIZE_N);

function sysfsOf(sys: RunningSystem): Sysfs {
  return new Sysfs(sys.kernel, undefined, { firmware: new PlatformFirmware(sys.root, sys.ram) });
}

/** One crash with fadump registered, and what the test captured at it. */
interface Crash {
  panic: PanicInfo;
  atCrash: Buffer;
  dmesgAtCrash: string;
  capture: RunningSystem;
  fdm: FadumpMemStruct;
  bootMem: bigint;
  vmcore: string;
}

function crashWithFadump(m: TempMachine, message: string, name: string): Crash {
  let atCrash: Buffer = Buffer.alloc(0);
  let dmesgAtCrash = '';
  const out = crashMachine(m.sys, { kind: 'panic', message }, {
    beforeDump(s) {
      atCrash = frameHashes(s.ram);
      dmesgAtCrash = systemDmesg(s);
    },
  });
  expect(out.after).toBe('fadump');
  m.sys = out.system;
  const fdm = readFdm(out.system.kernel, 'fdm_active');
  const vmcore = path.join(m.dir, name);
  copyProcVmcore(out.system.kernel, vmcore);
  return { panic: out.panic, atCrash, dmesgAtCrash, capture: out.system, fdm, bootMem: fdm.rmr_region.source_len, vmcore };
}

/** [addr, 4096] for every page of [start, end). */
function pagesOf(start: bigint, end: bigint): Array<[bigint, number]> {
  const out: Array<[bigint, number]> = [];
  for (let a = start; a < end; a += PAGE_SIZE_N) out.push([a, PAGE]);
  return out;
}

let m: TempMachine;
let first: Crash;
let cr3AtCrash: bigint;

beforeAll(() => {
  m = powerOnTemp({ mem: 64n * MiB, profile: 'database', seed: 7, cmdline: CMDLINE }, 'fadump');
  cr3AtCrash = m.sys.state.cpu.cr3;
  sysfsOf(m.sys).write('kernel/fadump/registered', '1');
  m.sys.ram.flush();
  first = crashWithFadump(m, 'fadump pipeline test', 'vmcore');
}, 300_000);

afterAll(() => m?.destroy());

describe('the firmware preserves memory and restarts; the capture boot runs in boot memory alone', () => {
  it('boot memory was copied where the kernel registered it; the reserved area follows boot memory', () => {
    const { fdm, bootMem } = first;
    // 64 MiB: a quarter (16 MiB) is less than this kernel's capture boot needs, so the floor decides.
    expect(bootMem > 16n * MiB && bootMem < 32n * MiB).toBe(true);
    expect(fdm.cpu_state_data.destination_address).toBe(bootMem);
    expect(fdm.rmr_region.destination_address).toBe(bootMem + fdm.cpu_state_data.source_len);
    expect(fdm.rmr_region.bytes_dumped).toBe(bootMem);
    expect(readHardwareFile(m.sys.root, FW_KERNEL_DUMP_PROPERTY)).not.toBeNull();
    expect(readHardwareFile(m.sys.root, FW_REGISTRATION)).toBeNull();
  });

  it('no frame above boot memory changed after the crash but the firmware\'s: the copy (equal to boot memory at the crash) and the register save area', () => {
    const { fdm, bootMem, atCrash, capture } = first;
    const after = frameHashes(capture.ram);
    const boot = bootMem / PAGE_SIZE_N;
    const copy = fdm.rmr_region.destination_address / PAGE_SIZE_N;
    const cpu = fdm.cpu_state_data.destination_address / PAGE_SIZE_N;
    const cpuEnd = cpu + fdm.cpu_state_data.source_len / PAGE_SIZE_N;
    const frames = capture.ram.size / PAGE_SIZE_N;
    const wrong: string[] = [];
    for (let pfn = boot; pfn < frames; pfn++) {
      const now = hashOf(after, pfn);
      if (pfn >= cpu && pfn < cpuEnd) continue;
      const want = pfn >= copy && pfn < copy + boot ? hashOf(atCrash, pfn - copy) : hashOf(atCrash, pfn);
      if (!now.equals(want)) wrong.push(`0x${pfn.toString(16)}`);
    }
    expect(wrong).toEqual([]);
    // The capture boot did overwrite boot memory: its image's data, page tables and log, its mem_map, its allocations.
    const changedBelow = changedFrames(atCrash, after).filter((p) => p < boot);
    expect(changedBelow.length).toBeGreaterThan(100);
  });

  it('the register save area holds REGSAVE, CPUSTRT 0, the CPU at the os-term call in crash_fadump, CR3 as the machine held it, CPUEND', () => {
    const { fdm, capture } = first;
    const b = capture.ram.read(fdm.cpu_state_data.destination_address, Number(fdm.cpu_state_data.bytes_dumped));
    const id = (s: string): bigint => { let v = 0n; for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(i < s.length ? s.charCodeAt(i) : 0); return v; };
    expect(b.readBigUInt64LE(0)).toBe(id('REGSAVE'));
    const ncpu = b.readUInt32LE(b.readUInt32LE(12));
    expect(ncpu).toBe(1);
    const regs = new Map<bigint, bigint>();
    let at = b.readUInt32LE(12) + 4;
    expect(b.readBigUInt64LE(at)).toBe(id('CPUSTRT'));
    expect(b.readBigUInt64LE(at + 8)).toBe(0n);
    for (at += 16; b.readBigUInt64LE(at) !== id('CPUEND'); at += 16) regs.set(b.readBigUInt64LE(at), b.readBigUInt64LE(at + 8));
    const fn = capture.kernel.sym('crash_fadump');
    const rip = regs.get(id('RIP'))!;
    expect(rip >= fn.address && rip < fn.address + fn.size).toBe(true);
    expect(regs.get(id('CR3'))).toBe(cr3AtCrash);
    expect(regs.size).toBe(30);
  });

  it('the capture boot says so, holds everything above boot memory, and is a capture kernel with /proc/vmcore', () => {
    const { capture, bootMem } = first;
    const log = systemDmesg(capture);
    expect(log).toContain('fadump: Firmware-assisted dump is active.\n');
    expect(log).toContain(`fadump: Reserved ${(64n * MiB - bootMem) >> 20n}MB of memory at ${bootMem >> 20n}MB for saving crash dump\n`);
    expect(isKdumpKernel(capture.kernel)).toBe(true);
    const st = systemStatus(capture);
    expect(st.kdump).toBe(false);
    expect(st.fadump).toMatchObject({ dumpActive: true, registered: false, bootMemorySize: bootMem, reserved: { start: bootMem, end: 64n * MiB } });
    expect(st.vmcore_bytes).toBe(procVmcore(capture.kernel)!.size);
    // Every frame above boot memory is reserved in the capture kernel's mem_map.
    const mm = new MemMap(capture.kernel);
    let notReserved = 0;
    mm.scan(bootMem / PAGE_SIZE_N, mm.maxPfn - bootMem / PAGE_SIZE_N, (_pfn, view, off) => {
      if ((view.getBigUint64(off, true) & pageFlag(PG_reserved)) === 0n) notReserved++;
    });
    expect(notReserved).toBe(0);
  });
});

const kdf = needs('/usr/bin/python3', 'python3:kdumpfile');
describe(`/proc/vmcore read by libkdumpfile${kdf.reason}`, () => {
  kdf.it('boot memory reads as it was at the crash, though the capture boot overwrote it in RAM; every page above it (the reserved area aside) equals RAM at the crash', () => {
    const { atCrash, bootMem, fdm, vmcore, capture } = first;
    const areaEnd = fdm.rmr_region.destination_address + fdm.rmr_region.source_len;
    // Page 0 is left out: libkdumpfile reads it as zeros in any ELF vmcore (test/interop/known-deviations.txt).
    const low = pagesOf(PAGE_SIZE_N, bootMem);
    const high = pagesOf(((areaEnd + PAGE_SIZE_N - 1n) / PAGE_SIZE_N + 1n) * PAGE_SIZE_N, capture.ram.size);
    const want = (p: Array<[bigint, number]>): string[] => p.map(([a]) => hashOf(atCrash, a / PAGE_SIZE_N).toString('hex'));
    expect(readerHashes('kdumpfile', vmcore, low, m.dir)).toEqual(want(low));
    expect(readerHashes('kdumpfile', vmcore, high, m.dir)).toEqual(want(high));
    const now = frameHashes(capture.ram);
    const overwritten = low.filter(([a]) => !hashOf(now, a / PAGE_SIZE_N).equals(hashOf(atCrash, a / PAGE_SIZE_N)));
    expect(overwritten.length).toBeGreaterThan(100);
    // The reserved area itself (register save area, copy, headers) is not in the dump.
    const area: Array<[bigint, number]> = [[bootMem, PAGE], [fdm.rmr_region.destination_address + 4n * PAGE_SIZE_N, PAGE]];
    expect(readerHashes('kdumpfile', vmcore, area, m.dir)).toEqual(['NODATA', 'NODATA']);
  });
});

const elfTools = needs('readelf', 'eu-readelf');
describe(`its program headers and notes${elfTools.reason}`, () => {
  elfTools.it('readelf: one PT_NOTE first, the kernel text load relocated into the copy, boot memory, then RAM after the area', () => {
    const r = runTool('readelf', ['-l', '-W', first.vmcore]);
    expect(r.status, r.stderr).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => /^\s+(NOTE|LOAD)\s/.test(l)).map((l) => l.trim().split(/\s+/));
    expect(rows.map((x) => x[0])).toEqual(['NOTE', 'LOAD', 'LOAD', 'LOAD']);
    const loads = rows.slice(1).map((x) => ({ vaddr: BigInt(x[2]), paddr: BigInt(x[3]), size: BigInt(x[4]) }));
    expect(loads[0].vaddr).toBe(0xffffffff81000000n);
    expect(loads[0].paddr).toBe(0x1000000n);
    expect(loads[1]).toEqual({ vaddr: 0xffff888000000000n, paddr: 0n, size: first.bootMem });
    const areaEnd = first.fdm.rmr_region.destination_address + first.fdm.rmr_region.source_len;
    expect(loads[2].paddr > areaEnd && loads[2].paddr + loads[2].size).toBe(64n * MiB);
  });

  elfTools.it('eu-readelf: the NT_PRSTATUS holds the registers of the panic (from the crash info header), VMCOREINFO the crashed kernel\'s CRASHTIME', () => {
    const r = runTool('eu-readelf', ['-n', first.vmcore]);
    expect(r.status, r.stderr).toBe(0);
    expect(BigInt(/\brip:\s+(0x[0-9a-f]+)/.exec(r.stdout)![1])).toBe(first.panic.regs.ip);
    expect(BigInt(/\brsp:\s+(0x[0-9a-f]+)/.exec(r.stdout)![1])).toBe(first.panic.regs.sp);
    expect(r.stdout).toMatch(/^\s+CRASHTIME=\d+$/m);
    expect(r.stdout).toContain('OSRELEASE=5.4.0-lkcd');
  });
});

const logTools = needs('vmcore-dmesg', 'makedumpfile', 'crash');
describe(`the crashed kernel's log and a filtered dump, by real tools${logTools.reason}`, () => {
  logTools.it('vmcore-dmesg, makedumpfile --dump-dmesg and crash --log print the log as it was at the crash', () => {
    expect(first.dmesgAtCrash).toMatch(/\] Kernel panic - not syncing: fadump pipeline test\n$/);
    const v = runTool('vmcore-dmesg', [first.vmcore]);
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout).toBe(first.dmesgAtCrash);
    const out = path.join(m.dir, 'mdf-dmesg');
    const d = runTool('makedumpfile', ['--dump-dmesg', first.vmcore, out]);
    expect(d.status, d.stdout + d.stderr).toBe(0);
    expect(fs.readFileSync(out, 'latin1')).toBe(first.dmesgAtCrash);
    const c = runTool('crash', ['--log', first.vmcore]);
    expect(c.status, c.stderr).toBe(0);
    expect(c.stdout).toBe(first.dmesgAtCrash);
  });

  logTools.it('makedumpfile -c -d 31 on it succeeds, and crash --osrelease reads its output', () => {
    const out = path.join(m.dir, 'vmcore.d31');
    const r = runTool('makedumpfile', ['-c', '-d', '31', first.vmcore, out]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(runTool('crash', ['--osrelease', out]).stdout).toBe('5.4.0-lkcd\n');
  });
});

describe('registration, release, and a second dump', () => {
  it('registering is refused (EPERM) while the dump is active; release_mem takes only 1', () => {
    const sysfs = sysfsOf(m.sys);
    expect(() => sysfs.write('kernel/fadump/registered', '1')).toThrow(/registered: write error: Operation not permitted \(a firmware-assisted dump is active/);
    expect(() => sysfs.write('kernel/fadump_registered', '0')).toThrow(/Operation not permitted/);
    expect(() => sysfs.write('kernel/fadump/release_mem', '2')).toThrow(/release_mem: write error: Invalid argument/);
    expect(() => sysfs.read('kernel/fadump_release_mem')).toThrow(/write-only/);
    expect(sysfs.read('kernel/fadump/mem_reserved').toString()).toBe(`${64n * MiB - first.bootMem}\n`);
  });

  it('echo 1 > release_mem: /proc/vmcore goes, the firmware forgets the dump, every frame above boot memory but the area is free again; no reboot', () => {
    const sys = m.sys;
    const before = countPageTypes(new MemMap(sys.kernel));
    const total = sys.kernel.readU64('_totalram_pages');
    sysfsOf(sys).write('kernel/fadump/release_mem', '1');
    sys.ram.flush();
    expect(procVmcore(sys.kernel)).toBeNull();
    expect(isKdumpKernel(sys.kernel)).toBe(false);
    expect(readHardwareFile(sys.root, FW_KERNEL_DUMP_PROPERTY)).toBeNull();
    const st = fadumpStatus(sys.kernel)!;
    expect(st.dumpActive).toBe(false);
    // Kept for the next registration: one page of CPU state data (one CPU), the boot memory copy, and one page
    // holding the 200-byte crash info header and the ELF core header (64 + 8 x 56 bytes at most).
    expect(st.reserved).toEqual({ start: first.bootMem, end: 2n * first.bootMem + 2n * PAGE_SIZE_N });
    const after = countPageTypes(new MemMap(sys.kernel));
    const freedAbove = (64n * MiB - st.reserved!.end) / PAGE_SIZE_N;
    // Reserved frames: those above the kept area, plus the page of CPU notes and the page of the ELF header copy.
    expect(before.reserved - after.reserved).toBe(freedAbove + 2n);
    expect(after.free - before.free >= freedAbove + 2n).toBe(true);
    expect(sys.kernel.readU64('_totalram_pages') - total).toBe(freedAbove);
    expect(systemStatus(sys).fadump).toMatchObject({ registered: false, dumpActive: false });
    expect(sysfsOf(sys).exists('kernel/fadump/release_mem')).toBe(true);
    expect(() => sysfsOf(sys).write('kernel/fadump/release_mem', '1')).toThrow(/Operation not permitted \(no firmware-assisted dump is active\)/);
    expect(systemDmesg(sys)).toContain('Run /sbin/init as init process');
  });

  it('registered again, a second crash gives a second good dump: every page equal to RAM at that crash', () => {
    sysfsOf(m.sys).write('kernel/fadump/registered', '1');
    expect(sysfsOf(m.sys).read('kernel/fadump/registered').toString()).toBe('1\n');
    m.sys.ram.flush();
    const second = crashWithFadump(m, 'second fadump crash', 'vmcore2');
    expect(second.bootMem).toBe(first.bootMem);
    expect(second.dmesgAtCrash).toMatch(/\] Kernel panic - not syncing: second fadump crash\n$/);
    expect(second.dmesgAtCrash).toContain('fadump: Firmware-assisted dump is active.');
    const areaEnd = second.fdm.rmr_region.destination_address + second.fdm.rmr_region.source_len;
    const pages = [...pagesOf(PAGE_SIZE_N, second.bootMem), ...pagesOf(((areaEnd + PAGE_SIZE_N - 1n) / PAGE_SIZE_N + 1n) * PAGE_SIZE_N, 64n * MiB)];
    const kd = needs('/usr/bin/python3', 'python3:kdumpfile');
    if (!kd.skip) {
      kd.assert();
      expect(readerHashes('kdumpfile', second.vmcore, pages, m.dir)).toEqual(pages.map(([a]) => hashOf(second.atCrash, a / PAGE_SIZE_N).toString('hex')));
    }
    if (!needs('vmcore-dmesg').skip) expect(runTool('vmcore-dmesg', [second.vmcore]).stdout).toBe(second.dmesgAtCrash);
  });
});

describe('a corrupt or missing crash info header', () => {
  for (const how of ['corrupt', 'missing'] as const) {
    it(`${how}: the capture boot says so in one line, gives the memory back and runs as a normal boot`, () => {
      const sys = m.sys;
      if (fadumpStatus(sys.kernel)!.dumpActive) { sysfsOf(sys).write('kernel/fadump/release_mem', '1'); }
      sysfsOf(sys).write('kernel/fadump/registered', '1');
      const hdr = readFwDump(sys.kernel).fadumphdr_addr;
      // Memory corruption of the reserved area while the system runs: the magic, or the whole header page.
      if (how === 'corrupt') sys.ram.write(hdr, Buffer.from('FADMPINF', 'latin1'));
      else sys.ram.write(hdr, Buffer.alloc(PAGE));
      sys.ram.flush();
      const out = crashMachine(sys, { kind: 'panic', message: `${how} header` });
      m.sys = out.system;
      expect(out.after).toBe('fadump');
      const log = systemDmesg(out.system);
      const fadumpLines = log.split('\n').filter((l) => /fadump: /.test(l));
      expect(fadumpLines.map((l) => l.replace(/^\[[ \d.]+\] /, ''))).toEqual([
        'fadump: Firmware-assisted dump is active.',
        `fadump: Reserved ${(64n * MiB - first.bootMem) >> 20n}MB of memory at ${first.bootMem >> 20n}MB for saving crash dump`,
        'fadump: Crash info header is not valid.',
      ]);
      expect(procVmcore(out.system.kernel)).toBeNull();
      expect(isKdumpKernel(out.system.kernel)).toBe(false);
      expect(log).toContain('Run /sbin/init as init process');
      expect(fadumpStatus(out.system.kernel)).toMatchObject({ dumpActive: false, registered: false });
      expect(readHardwareFile(out.system.root, FW_KERNEL_DUMP_PROPERTY)).toBeNull();
      // The memory above the kept area is free, and fadump can be registered again.
      const mm = new MemMap(out.system.kernel);
      expect(countPageTypes(mm).free > (64n * MiB - 2n * first.bootMem) / PAGE_SIZE_N).toBe(true);
      sysfsOf(out.system).write('kernel/fadump/registered', '1');
      sysfsOf(out.system).write('kernel/fadump/registered', '0');
    });
  }
});

describe('fadump beside the other designs', () => {
  let both: TempMachine;
  afterAll(() => both?.destroy());

  it('with the LKCD dump armed and a kexec image loaded, fadump takes the crash (its notifier runs first): stage 1 never runs, the block stays armed', () => {
    both = powerOnTemp({ mem: 64n * MiB, profile: 'idle', seed: 3, cmdline: CMDLINE }, 'fadump-lkcd');
    const { addr, blockPhys } = armDump(both.sys.kernel, { active: true, level: 8, flags: DUMP_FLAGS_SOFTBOOT | DUMP_FLAGS_DISKDUMP, compress: 2, panicTimeout: 5 });
    loadKexec(both.sys, `root=/dev/vda1 ro crashdump=0x${addr.toString(16)}`);
    sysfsOf(both.sys).write('kernel/fadump/registered', '1');
    const out = crashMachine(both.sys, { kind: 'sysrq-c' });
    both.sys = out.system;
    expect(out.after).toBe('fadump');
    expect(out.dump).toBeNull();
    // Memory as it was at the crash is /proc/vmcore (boot memory read from the firmware's copy,
    // wherever the block landed): the block there is still armed.
    expect(procVmcore(both.sys.kernel)).not.toBeNull();
    const vmcore = path.join(both.dir, 'vmcore');
    copyProcVmcore(both.sys.kernel, vmcore);
    const dump = openDump(vmcore);
    try {
      const atCrash = { size: both.sys.ram.size, read: (phys: bigint, len: number) => dump.readPage(phys / PAGE_SIZE_N).subarray(Number(phys % PAGE_SIZE_N), Number(phys % PAGE_SIZE_N) + len) };
      expect(readBlock(atCrash as unknown as PhysicalRam, blockPhys).state).toBe(DUMP_STATE_ARMED);
    } finally {
      dump.close();
    }
  });

  it('with fadump=on, crashkernel= sizes boot memory and no kdump region is reserved', () => {
    const k = powerOnTemp({ mem: 64n * MiB, profile: 'idle', seed: 3, cmdline: `${CMDLINE} crashkernel=24M` }, 'fadump-ck');
    try {
      expect(readFwDump(k.sys.kernel).boot_memory_size).toBe(24n * MiB);
      expect(systemStatus(k.sys).crashkernel).toBeNull();
      expect(systemDmesg(k.sys)).not.toContain('for crashkernel');
    } finally {
      k.destroy();
    }
  });
});
