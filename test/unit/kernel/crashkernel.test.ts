/**
 * crashkernel= as the 5.4 kernel parses and places it (kernel/crash_core.c,
 * arch/x86/kernel/setup.c), checked against the grammar of
 * Documentation/admin-guide/kernel-parameters.txt and the placement rules
 * (16 MiB aligned, top-down below 4 GiB, @offset exact), and /proc/iomem
 * in the kernel's r_show format against System.map read from boot/.
 */
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  crashkernelRegion, findTopDown, iomemText, kexecCrashSize, memparse, parseCrashkernel, systemDmesg, MemMap, PG_reserved, pageFlag,
  buildFileNames,
} from '../../../src/kernel/index.js';
import { powerOnTemp, MiB, type TempMachine } from '../../helpers/machine.js';

const G = 1n << 30n;

describe('memparse and parse_crashkernel', () => {
  it('memparse reads decimal, 0x hex, leading-0 octal and K/M/G/T suffixes', () => {
    expect(memparse('128M')).toEqual({ value: 128n * MiB, end: 4 });
    expect(memparse('0x1000')).toEqual({ value: 0x1000n, end: 6 });
    expect(memparse('010K')).toEqual({ value: 8n * 1024n, end: 4 });
    expect(memparse('2G@')).toEqual({ value: 2n * G, end: 2 });
    expect(memparse('x')).toEqual({ value: 0n, end: 0 });
  });

  it('size and size@offset, the last crashkernel= winning', () => {
    expect(parseCrashkernel('ro crashkernel=64M quiet', G)).toEqual({ kind: 'size', size: 64n * MiB, base: 0n });
    expect(parseCrashkernel('crashkernel=32M@48M', G)).toEqual({ kind: 'size', size: 32n * MiB, base: 48n * MiB });
    expect(parseCrashkernel('crashkernel=16M crashkernel=48M', G)).toEqual({ kind: 'size', size: 48n * MiB, base: 0n });
    expect(parseCrashkernel('root=/dev/vda1', G)).toEqual({ kind: 'absent' });
  });

  it('the range form picks the size of the range holding the system RAM, with an optional @offset', () => {
    const spec = 'crashkernel=512M-2G:64M,2G-:128M';
    expect(parseCrashkernel(spec, G)).toEqual({ kind: 'size', size: 64n * MiB, base: 0n });
    expect(parseCrashkernel(spec, 4n * G)).toEqual({ kind: 'size', size: 128n * MiB, base: 0n });
    expect(parseCrashkernel(spec, 256n * MiB)).toEqual({ kind: 'size', size: 0n, base: 0n });
    expect(parseCrashkernel('crashkernel=0-1G:32M@64M', 512n * MiB)).toEqual({ kind: 'size', size: 32n * MiB, base: 64n * MiB });
  });

  it('malformed values are refused with the kernel\'s words', () => {
    expect(parseCrashkernel('crashkernel=abc', G)).toEqual({ kind: 'invalid', why: 'memory value expected' });
    expect(parseCrashkernel('crashkernel=64Mx', G)).toEqual({ kind: 'invalid', why: 'unrecognized char: x' });
    expect(parseCrashkernel('crashkernel=1G-512M:64M', 2n * G)).toEqual({ kind: 'invalid', why: 'end <= start' });
    expect(parseCrashkernel('crashkernel=512M-2G', G)).toEqual({ kind: 'invalid', why: 'unrecognized char: -' });
    expect(parseCrashkernel('crashkernel=512M-2G,2G-:64M', G)).toEqual({ kind: 'invalid', why: "':' expected" });
    expect(parseCrashkernel('crashkernel=0-:2G', G)).toEqual({ kind: 'invalid', why: 'invalid size' });
    expect(parseCrashkernel('crashkernel=256M,high', G).kind).toBe('unsupported');
  });

  it('findTopDown takes the highest aligned base that fits in one free range', () => {
    const free = [{ start: 0x100000n, end: 0x1000000n }, { start: 0x1400000n, end: 0x4000000n }];
    expect(findTopDown(free, 32n * MiB, 16n * MiB, 4n * G, 16n * MiB)).toBe(32n * MiB);
    expect(findTopDown(free, 48n * MiB, 16n * MiB, 4n * G, 16n * MiB)).toBeNull();
    expect(findTopDown(free, 8n * MiB, 0n, 16n * MiB, 2n * MiB)).toBe(8n * MiB);
  });
});

function bootWith(crashkernel: string, mem = 64n * MiB): TempMachine {
  return powerOnTemp({ mem, profile: 'idle', seed: 4, cmdline: `root=/dev/vda1 ro ${crashkernel}` }, 'crashk');
}

describe('the reservation at boot', () => {
  const machines: TempMachine[] = [];
  afterAll(() => { for (const m of machines) m.destroy(); });
  const boot = (c: string, mem?: bigint): TempMachine => { const m = bootWith(c, mem); machines.push(m); return m; };

  it('crashkernel=32M on 64M: [32M, 64M), 16 MiB aligned at the top, PG_reserved in mem_map, logged', () => {
    const m = boot('crashkernel=32M');
    expect(crashkernelRegion(m.sys.kernel)).toEqual({ start: 32n * MiB, end: 64n * MiB });
    expect(kexecCrashSize(m.sys.kernel)).toBe(32n * MiB);
    expect(systemDmesg(m.sys)).toContain('Reserving 32MB of memory at 32MB for crashkernel (System RAM: 63MB)');
    const memmap = new MemMap(m.sys.kernel);
    for (let pfn = (32n * MiB) / 4096n; pfn < (64n * MiB) / 4096n; pfn += 97n) {
      expect(memmap.get(pfn).flags & pageFlag(PG_reserved), `pfn ${pfn}`).not.toBe(0n);
    }
  });

  it('crashkernel=16M@48M is placed exactly there; @16M, where the kernel is, is refused and the boot goes on', () => {
    expect(crashkernelRegion(boot('crashkernel=16M@48M').sys.kernel)).toEqual({ start: 48n * MiB, end: 64n * MiB });
    const busy = boot('crashkernel=16M@16M');
    expect(crashkernelRegion(busy.sys.kernel)).toBeNull();
    expect(systemDmesg(busy.sys)).toContain('crashkernel reservation failed - memory is in use.');
    expect(systemDmesg(busy.sys)).toContain('Run /sbin/init as init process');
  });

  it('a reservation that does not fit is refused in the log, the boot goes on with nothing reserved', () => {
    const m = boot('crashkernel=56M');
    expect(crashkernelRegion(m.sys.kernel)).toBeNull();
    expect(kexecCrashSize(m.sys.kernel)).toBe(0n);
    expect(systemDmesg(m.sys)).toContain('crashkernel reservation failed - No suitable area found.');
  });

  it('/proc/iomem: e820 ranges, then the image and the region nested in System RAM, in r_show\'s format', () => {
    const m = boot('crashkernel=32M', 128n * MiB);
    const map = new Map<string, bigint>();
    for (const line of fs.readFileSync(buildFileNames(m.sys.root.bootDir, m.sys.kernel.release).systemMap, 'utf8').trim().split('\n')) {
      const [a, , n] = line.split(' ');
      map.set(n, BigInt(`0x${a}`) - 0xffffffff80000000n);
    }
    const h = (n: bigint): string => n.toString(16).padStart(8, '0');
    const child = (name: string, a: string, b: string): string => `  ${h(map.get(a)!)}-${h(map.get(b)! - 1n)} : ${name}`;
    expect(iomemText(m.sys.kernel).split('\n').filter(Boolean)).toEqual([
      '00000000-00000fff : Reserved',
      '00001000-0009fbff : System RAM',
      '0009fc00-0009ffff : Reserved',
      '000f0000-000fffff : Reserved',
      '00100000-07ffffff : System RAM',
      child('Kernel code', '_text', '_etext'),
      child('Kernel rodata', '__start_rodata', '__end_rodata'),
      child('Kernel data', '_sdata', '_edata'),
      child('Kernel bss', '__bss_start', '__bss_stop'),
      '  06000000-07ffffff : Crash kernel',
    ]);
  });
});
