import { array, bitfields, ctyped, defineStruct, i32, u32, u64, type ValueOf } from '../../codec/index.js';
import { NR_CPUS } from '../constants.js';
import { pt_regs } from '../structs/pt_regs.js';

/** struct cpumask (include/linux/cpumask.h): BITS_TO_LONGS(NR_CPUS) unsigned longs. */
export const cpumask = defineStruct('cpumask', {
  bits: array(ctyped(u64, 'unsigned long'), Math.ceil(NR_CPUS / 64)),
});

/**
 * struct fadump_crash_info_header (arch/powerpc/include/asm/fadump.h, 2011,
 * header version 0): written by the first kernel right after the boot
 * memory copy in its reserved area. x86_64's pt_regs (168 bytes) takes the
 * place of POWER's; pt_regs is 8-aligned, hence the 4 bytes after
 * crashing_cpu. magic_number is a u64 stored in the machine's byte order:
 * on x86_64 its bytes in RAM read "FNIPMDAF", as on a little-endian POWER
 * kernel (ppc64le) running the same code.
 */
export const fadump_crash_info_header = defineStruct('fadump_crash_info_header', {
  magic_number: u64,
  elfcorehdr_addr: u64,
  crashing_cpu: u32,
  _pad: u32,
  regs: pt_regs,
  online_mask: cpumask,
});
export type FadumpCrashInfoHeader = ValueOf<typeof fadump_crash_info_header>;

/**
 * struct fw_dump (arch/powerpc/include/asm/fadump.h, 2011): the kernel's
 * fadump state, in .data. The last two members are ours: where this
 * kernel keeps its copy of the crashed kernel's ELF core header (the
 * capture boot patches the copy, not the original in the reserved area).
 */
export const fw_dump = defineStruct('fw_dump', {
  cpu_state_data_size: ctyped(u64, 'unsigned long'),
  hpte_region_size: ctyped(u64, 'unsigned long'),
  boot_memory_size: ctyped(u64, 'unsigned long'),
  reserve_dump_area_start: ctyped(u64, 'unsigned long'),
  reserve_dump_area_size: ctyped(u64, 'unsigned long'),
  /** fadump_reserve_mem= (or crashkernel=) from the command line. */
  reserve_bootvar: ctyped(u64, 'unsigned long'),
  fadumphdr_addr: ctyped(u64, 'unsigned long'),
  cpu_notes_buf: ctyped(u64, 'unsigned long'),
  cpu_notes_buf_size: ctyped(u64, 'unsigned long'),
  ibm_configure_kernel_dump: ctyped(i32, 'int'),
  flags: bitfields(ctyped(u32, 'unsigned int'), [
    { name: 'fadump_enabled', bits: 1 }, { name: 'fadump_supported', bits: 1 }, { name: 'dump_active', bits: 1 },
    { name: 'dump_registered', bits: 1 }, { name: 'release_mem_file', bits: 1 }, { name: '_unused', bits: 27 },
  ]),
  elfcorehdr_buf: ctyped(u64, 'unsigned long'),
  elfcorehdr_buf_size: ctyped(u64, 'unsigned long'),
});
export type FwDump = ValueOf<typeof fw_dump>;

/** Bits of fw_dump.flags, low bit first (gcc's x86_64 bitfield order). */
export const FW_DUMP_ENABLED = 0x1;
export const FW_DUMP_SUPPORTED = 0x2;
export const FW_DUMP_ACTIVE = 0x4;
export const FW_DUMP_REGISTERED = 0x8;
/** fadump_release_mem was created at init (only in a capture boot). */
export const FW_DUMP_RELEASE_FILE = 0x10;
