/**
 * Early boot of firmware-assisted dump (early_fadump_param,
 * early_fadump_reserve_mem, early_init_dt_scan_fw_dump,
 * fadump_calculate_reserve_size, get_fadump_area_size,
 * fadump_reserve_mem): parse fadump=, learn from the firmware whether a
 * dump waits, size boot memory and reserve either the dump area (a normal
 * boot) or everything above boot memory (a capture boot).
 */
import { Elf64_Ehdr, Elf64_Phdr, formatSize, hex } from '../../codec/index.js';
import {
  fadump_mem_struct, kernelDumpSizes, PAGE_SIZE_N, usablePfnRanges, type E820Range, type PlatformFirmware,
} from '../../machine/index.js';
import { bootLayout, type PhysRange } from '../boot_layout.js';
import { LOGLEVEL_ERR, LOGLEVEL_INFO, LOGLEVEL_WARNING } from '../constants.js';
import { memparse, parseCrashkernel } from '../crashkernel.js';
import { CAPTURE_KERNEL_MIN_FREE } from '../kexec_crash.js';
import type { Kernel } from '../kernel.js';
import type { KernelConfig } from '../layout.js';
import { printk } from '../printk.js';
import { parseKernelParams } from '../pstore/cmdline.js';
import { BOOT_MEM_ROUND, CPU_UNKNOWN, MIN_BOOT_MEM } from './constants.js';
import { readFwDump, writeFdm, writeFwDump } from './state.js';
import {
  fadump_crash_info_header, FW_DUMP_ACTIVE, FW_DUMP_ENABLED, FW_DUMP_SUPPORTED, fw_dump,
} from './structs.js';

const MiB = 1n << 20n;

function pageAlign(n: bigint): bigint {
  return ((n + PAGE_SIZE_N - 1n) / PAGE_SIZE_N) * PAGE_SIZE_N;
}

/** fadump= and fadump_reserve_mem= as the early params read them (the last of each wins). */
export function parseFadumpParams(cmdline: string): { enabled: boolean; reserveBootvar: bigint } {
  const params = parseKernelParams(cmdline);
  let enabled = false;
  for (const v of params.all('fadump')) {
    // strncmp(p, "on", 2) / strncmp(p, "off", 3): anything else leaves it as it was.
    if (v.startsWith('on')) enabled = true;
    else if (v.startsWith('off')) enabled = false;
  }
  const rm = params.get('fadump_reserve_mem');
  return { enabled, reserveBootvar: rm !== undefined ? memparse(rm, 0).value : 0n };
}

/**
 * Boot memory a capture boot of this machine needs: everything its kernel
 * lays down while it boots (the low megabyte, its image, the mem_map of
 * all RAM, its early allocations) plus CAPTURE_KERNEL_MIN_FREE to run in,
 * rounded up to a MiB.
 */
export function fadumpBootFootprint(ramBytes: bigint, config: KernelConfig): bigint {
  const need = bootLayout(ramBytes, config).earlyEnd + CAPTURE_KERNEL_MIN_FREE;
  return ((need + MiB - 1n) / MiB) * MiB;
}

/**
 * MIN_BOOT_MEM scaled to the simulated machine: 256 MiB is a quarter of
 * 1 GiB, so a smaller machine gets a quarter of its RAM (rounded down to
 * a MiB) instead, and never less than its capture boot's footprint
 * (fadumpBootFootprint). From 1 GiB up it is 2011's 256 MiB.
 */
export function fadumpMinBootMem(ramBytes: bigint, config: KernelConfig): bigint {
  const quarter = ((ramBytes / 4n) / MiB) * MiB;
  const scaled = quarter < MIN_BOOT_MEM ? quarter : MIN_BOOT_MEM;
  const floor = fadumpBootFootprint(ramBytes, config);
  return scaled > floor ? scaled : floor;
}

/**
 * fadump_calculate_reserve_size(): crashkernel= (its size; the offset is
 * ignored: fadump places its own area), else fadump_reserve_mem=, else 5%
 * of the end of RAM rounded down to a multiple of 256 MiB, at least the
 * (scaled) MIN_BOOT_MEM. Page aligned.
 */
export function fadumpCalculateReserveSize(cmdline: string, ramEnd: bigint, systemRam: bigint, config: KernelConfig, reserveBootvar: bigint): { size: bigint; from: string } {
  const ck = parseCrashkernel(cmdline, systemRam);
  if (ck.kind === 'size' && ck.size > 0n) return { size: pageAlign(ck.size), from: 'crashkernel=' };
  if (reserveBootvar > 0n) return { size: pageAlign(reserveBootvar), from: 'fadump_reserve_mem=' };
  const fivePercent = (ramEnd / 20n) & ~(BOOT_MEM_ROUND - 1n);
  const min = fadumpMinBootMem(ramEnd, config);
  return { size: fivePercent > min ? fivePercent : min, from: '5% of RAM' };
}

/** Most program headers the fadump ELF core header holds: CPU notes, VMCOREINFO, kernel text, boot memory, and two per memory region. */
export function fadumpMaxPhdrs(nrRegions: number): number {
  return 4 + 2 * nrRegions;
}

/**
 * get_fadump_area_size(): CPU state data, HPTE region, the boot memory
 * copy, the crash info header and the ELF core header, page aligned.
 */
export function fadumpAreaSize(cpuStateDataSize: bigint, hpteRegionSize: bigint, bootMemorySize: bigint, nrRegions: number): bigint {
  const hdr = BigInt(fadump_crash_info_header.size + Elf64_Ehdr.size + fadumpMaxPhdrs(nrRegions) * Elf64_Phdr.size);
  return pageAlign(cpuStateDataSize + hpteRegionSize + bootMemorySize + hdr);
}

/** Whether [start, end) lies inside one of the free ranges. */
function isFree(free: readonly PhysRange[], start: bigint, end: bigint): boolean {
  return free.some((r) => start >= r.start && end <= r.end);
}

/**
 * fadump_reserve_mem() at early boot, before any allocation. Returns the
 * physical ranges to keep from the allocator, or null when fadump
 * reserved nothing (not enabled, not supported, no room): the caller then
 * reserves crashkernel= for kdump, as early_init_devtree() does.
 */
export function fadumpReserveMem(kernel: Kernel, cmdline: string, firmware: PlatformFirmware | null,
  e820: readonly E820Range[], free: readonly PhysRange[], config: KernelConfig): PhysRange[] | null {
  writeFwDump(kernel, fw_dump.zero());
  writeFdm(kernel, 'fdm', fadump_mem_struct.zero());
  writeFdm(kernel, 'fdm_active', fadump_mem_struct.zero());
  kernel.writeU32('crashing_cpu', CPU_UNKNOWN);
  const params = parseFadumpParams(cmdline);
  const active = firmware?.kernelDumpProperty() ?? null;
  if (!params.enabled) {
    // Not the kernel's words: the firmware holds a dump nobody will read, and RAM above boot memory is about to be reused.
    if (active) printk(kernel, 'fadump: the firmware holds a firmware-assisted dump, but fadump is not enabled (fadump=on): it is not reserved and will be overwritten', LOGLEVEL_WARNING);
    return null;
  }
  const fw = readFwDump(kernel);
  fw.reserve_bootvar = params.reserveBootvar;
  if (!firmware) {
    writeFwDump(kernel, { ...fw, flags: FW_DUMP_ENABLED });
    printk(kernel, 'fadump: Firmware-assisted dump is not supported on this hardware', LOGLEVEL_INFO);
    return null;
  }
  // early_init_dt_scan_fw_dump(): ibm,configure-kernel-dump exists, and its -sizes.
  const sizes = kernelDumpSizes();
  fw.flags = FW_DUMP_ENABLED | FW_DUMP_SUPPORTED;
  fw.ibm_configure_kernel_dump = 1;
  fw.cpu_state_data_size = sizes.cpuStateData;
  fw.hpte_region_size = sizes.hpteRegion;
  const usable = usablePfnRanges(e820);
  const boundary = usable.length ? usable[usable.length - 1][1] * PAGE_SIZE_N : 0n;
  const systemRam = usable.reduce((n, [s, e]) => n + (e - s) * PAGE_SIZE_N, 0n);

  if (active) {
    const rmr = active.rmr_region;
    // The property is hardware input: a boot memory range it cannot describe is not trusted.
    if (rmr.source_len === 0n || rmr.source_len >= boundary || rmr.destination_address + rmr.source_len > boundary
      || rmr.destination_address < rmr.source_len) {
      printk(kernel, `fadump: rtas/ibm,kernel-dump describes boot memory of ${hex(rmr.source_len)} bytes copied to ${hex(rmr.destination_address)}, which this machine of ${formatSize(boundary)} cannot hold: the dump is ignored`, LOGLEVEL_ERR);
      writeFwDump(kernel, fw);
      return null;
    }
    writeFdm(kernel, 'fdm_active', active);
    fw.flags |= FW_DUMP_ACTIVE;
    fw.boot_memory_size = rmr.source_len;
    printk(kernel, 'fadump: Firmware-assisted dump is active.', LOGLEVEL_INFO);
    // Everything above boot memory stays as the crash left it until the dump is saved and released.
    const base = fw.boot_memory_size;
    const size = boundary - base;
    printk(kernel, `fadump: Reserved ${size >> 20n}MB of memory at ${base >> 20n}MB for saving crash dump`, LOGLEVEL_INFO);
    fw.fadumphdr_addr = rmr.destination_address + rmr.source_len;
    fw.reserve_dump_area_start = base;
    fw.reserve_dump_area_size = size;
    writeFwDump(kernel, fw);
    return [{ start: base, end: boundary }];
  }

  const calc = fadumpCalculateReserveSize(cmdline, boundary, systemRam, config, params.reserveBootvar);
  fw.boot_memory_size = calc.size;
  const footprint = fadumpBootFootprint(boundary, config);
  if (calc.size < footprint) {
    printk(kernel, `fadump: boot memory of ${formatSize(calc.size)} (${calc.from}) is too small for a capture boot of this kernel, which needs ${formatSize(footprint)}: Failed to reserve memory`, LOGLEVEL_ERR);
    writeFwDump(kernel, { ...fw, boot_memory_size: 0n });
    return null;
  }
  const size = fadumpAreaSize(fw.cpu_state_data_size, fw.hpte_region_size, fw.boot_memory_size, usable.length);
  // The first free area-sized slot from the end of boot memory up, as fadump_reserve_mem() searches.
  let base = fw.boot_memory_size;
  let found: bigint | null = null;
  for (let steps = 0; base + size <= boundary && steps < 1 << 20; steps++, base += size) {
    if (isFree(free, base, base + size)) { found = base; break; }
  }
  if (found === null) {
    printk(kernel, `fadump: Failed to reserve memory (an area of ${formatSize(size)} for ${formatSize(fw.boot_memory_size)} of boot memory does not fit above it in ${formatSize(boundary)} of RAM)`, LOGLEVEL_ERR);
    writeFwDump(kernel, { ...fw, boot_memory_size: 0n });
    return null;
  }
  printk(kernel, `fadump: Reserved ${size >> 20n}MB of memory at ${found >> 20n}MB for firmware-assisted dump (System RAM: ${systemRam >> 20n}MB)`, LOGLEVEL_INFO);
  fw.reserve_dump_area_start = found;
  fw.reserve_dump_area_size = size;
  writeFwDump(kernel, fw);
  return [{ start: found, end: found + size }];
}
