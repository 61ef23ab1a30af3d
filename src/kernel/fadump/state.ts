/**
 * The fadump state of the running kernel, all in its RAM: fw_dump, the
 * structure it registers (fdm), its copy of the firmware's
 * rtas/ibm,kernel-dump (fdm_active) and crashing_cpu.
 */
import { fadump_mem_struct, type FadumpMemStruct } from '../../machine/index.js';
import type { Kernel } from '../kernel.js';
import {
  fw_dump, FW_DUMP_ACTIVE, FW_DUMP_ENABLED, FW_DUMP_REGISTERED, FW_DUMP_RELEASE_FILE, FW_DUMP_SUPPORTED, type FwDump,
} from './structs.js';

export function readFwDump(kernel: Kernel): FwDump {
  return kernel.readStruct(fw_dump, 'fw_dump');
}

export function writeFwDump(kernel: Kernel, v: FwDump): void {
  kernel.writeStruct(fw_dump, 'fw_dump', v);
}

/** Sets or clears one FW_DUMP_* bit. */
export function setFwDumpFlag(kernel: Kernel, bit: number, on: boolean): void {
  const f = readFwDump(kernel);
  f.flags = on ? (f.flags | bit) >>> 0 : (f.flags & ~bit) >>> 0;
  writeFwDump(kernel, f);
}

export const fadumpEnabled = (f: FwDump): boolean => (f.flags & FW_DUMP_ENABLED) !== 0;
export const fadumpSupported = (f: FwDump): boolean => (f.flags & FW_DUMP_SUPPORTED) !== 0;
export const dumpActive = (f: FwDump): boolean => (f.flags & FW_DUMP_ACTIVE) !== 0;
export const dumpRegistered = (f: FwDump): boolean => (f.flags & FW_DUMP_REGISTERED) !== 0;
export const releaseMemFile = (f: FwDump): boolean => (f.flags & FW_DUMP_RELEASE_FILE) !== 0;

export function readFdm(kernel: Kernel, which: 'fdm' | 'fdm_active'): FadumpMemStruct {
  return kernel.readStruct(fadump_mem_struct, which);
}

export function writeFdm(kernel: Kernel, which: 'fdm' | 'fdm_active', v: FadumpMemStruct): void {
  kernel.writeStruct(fadump_mem_struct, which, v);
}

/** What `machine status` shows of fadump, or null when it is not enabled. */
export interface FadumpStatus {
  registered: boolean;
  dumpActive: boolean;
  bootMemorySize: bigint;
  /** The area held for the dump: [start, end). In a capture boot, all memory above boot memory until release. */
  reserved: { start: bigint; end: bigint } | null;
}

export function fadumpStatus(kernel: Kernel): FadumpStatus | null {
  const f = readFwDump(kernel);
  if (!fadumpEnabled(f) || !fadumpSupported(f)) return null;
  return {
    registered: dumpRegistered(f),
    dumpActive: dumpActive(f),
    bootMemorySize: f.boot_memory_size,
    reserved: f.reserve_dump_area_size !== 0n ? { start: f.reserve_dump_area_start, end: f.reserve_dump_area_start + f.reserve_dump_area_size } : null,
  };
}
