/**
 * The firmware-assisted dump ABI between the kernel and the platform
 * firmware, as the 2011 series defined it for POWER's RTAS
 * (arch/powerpc/include/asm/fadump.h, later
 * arch/powerpc/platforms/pseries/rtas-fadump.h): the memory structure the
 * kernel registers with `ibm,configure-kernel-dump`, its sections, and the
 * register save area the firmware writes at a crash.
 *
 * Adapted to x86_64, and only there: every field is stored little-endian
 * (the platform's byte order; POWER's RTAS is big-endian), so magic values
 * keep their numeric value (fadump_str_to_u64("REGSAVE") =
 * 0x5245475341564500) and their bytes in RAM read reversed; the register
 * save area holds x86_64 registers under 8-character ids in the same
 * packing as POWER's "GPR0", "NIA", "MSR".
 */
import { defineStruct, u16, u32, u64, type ValueOf } from '../codec/index.js';

/** ibm,configure-kernel-dump commands. */
export const FADUMP_REGISTER = 1;
export const FADUMP_UNREGISTER = 2;
export const FADUMP_INVALIDATE = 3;

/** dump_format_version the 2011 kernel registers. */
export const FADUMP_FORMAT_VERSION = 0x00000001;

/** Firmware-provided dump section types (source_data_type). */
export const FADUMP_CPU_STATE_DATA = 0x0001;
export const FADUMP_HPTE_REGION = 0x0002;
export const FADUMP_REAL_MODE_REGION = 0x0011;

/** request_flag of a section the kernel wants dumped. */
export const FADUMP_REQUEST_FLAG = 0x00000001;

/** dump_status_flag bits (PAPR table 136, as QEMU's spapr_fadump.h names them); the 2011 kernel calls 0x2000 FADUMP_ERROR_FLAG. */
export const FADUMP_STATUS_DUMP_PERFORMED = 0x8000;
export const FADUMP_STATUS_DUMP_TRIGGERED = 0x4000;
export const FADUMP_ERROR_FLAG = 0x2000;

/** error_flags of a section. */
export const FADUMP_ERROR_INVALID_DATA_TYPE = 0x8000;
export const FADUMP_ERROR_INVALID_SOURCE_ADDR = 0x4000;
export const FADUMP_ERROR_LENGTH_EXCEEDS_SOURCE = 0x2000;
export const FADUMP_ERROR_INVALID_DEST_ADDR = 0x1000;
export const FADUMP_ERROR_DEST_TOO_SMALL = 0x0800;

/** RTAS return codes of ibm,configure-kernel-dump (PAPR; QEMU's spapr.h names). */
export const RTAS_OUT_SUCCESS = 0;
export const RTAS_OUT_HW_ERROR = -1;
export const RTAS_OUT_PARAM_ERROR = -3;
export const RTAS_OUT_DUMP_ALREADY_REGISTERED = -9;
export const RTAS_OUT_DUMP_ACTIVE = -10;

/** struct fadump_section: one dump section of the registration. */
export const fadump_section = defineStruct('fadump_section', {
  request_flag: u32,
  source_data_type: u16,
  error_flags: u16,
  source_address: u64,
  source_len: u64,
  bytes_dumped: u64,
  destination_address: u64,
});
export type FadumpSection = ValueOf<typeof fadump_section>;

/** struct fadump_section_header: the ibm,configure-kernel-dump header (no disk dump option here). */
export const fadump_section_header = defineStruct('fadump_section_header', {
  dump_format_version: u32,
  dump_num_sections: u16,
  dump_status_flag: u16,
  offset_first_dump_section: u32,
  dd_block_size: u32,
  dd_block_offset: u64,
  dd_num_blocks: u64,
  dd_offset_disk_path: u32,
  max_time_auto: u32,
});
export type FadumpSectionHeader = ValueOf<typeof fadump_section_header>;

/**
 * struct fadump_mem_struct (2011): the header and the three sections the
 * kernel registers, in this order. Also the value of the device-tree
 * property rtas/ibm,kernel-dump the firmware presents after a dump.
 */
export const fadump_mem_struct = defineStruct('fadump_mem_struct', {
  header: fadump_section_header,
  cpu_state_data: fadump_section,
  hpte_region: fadump_section,
  rmr_region: fadump_section,
});
export type FadumpMemStruct = ValueOf<typeof fadump_mem_struct>;

/** The sections of a fadump_mem_struct, in memory order. */
export const FADUMP_SECTIONS = ['cpu_state_data', 'hpte_region', 'rmr_region'] as const;
export type FadumpSectionName = typeof FADUMP_SECTIONS[number];

/** struct fadump_reg_save_area_header: the start of the CPU state data the firmware writes. */
export const fadump_reg_save_area_header = defineStruct('fadump_reg_save_area_header', {
  magic_number: u64,
  version: u32,
  /** Offset from this header of the u32 CPU count, which the register entries follow. */
  num_cpu_offset: u32,
});

/** struct fadump_reg_entry: an 8-character register id and its value. */
export const fadump_reg_entry = defineStruct('fadump_reg_entry', {
  reg_id: u64,
  reg_value: u64,
});
export type FadumpRegEntry = ValueOf<typeof fadump_reg_entry>;

/** Version of the register save area this firmware writes (QEMU writes 1 as well). */
export const REGSAVE_AREA_VERSION = 1;
/** The lower 32 bits of CPUSTRT's and CPUEND's value are the logical CPU id. */
export const FADUMP_CPU_ID_MASK = 0xffffffffn;

/**
 * fadump_str_to_u64(): up to the first 8 characters of `s`, the first in
 * the most significant byte, NUL-padded on the right. "FADMPINF" is
 * 0x4641444d50494e46.
 */
export function fadumpStrToU64(s: string): bigint {
  let v = 0n;
  for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(i < s.length ? s.charCodeAt(i) & 0xff : 0);
  return v;
}

export const REGSAVE_AREA_MAGIC = fadumpStrToU64('REGSAVE');
export const REG_ID_CPUSTRT = fadumpStrToU64('CPUSTRT');
export const REG_ID_CPUEND = fadumpStrToU64('CPUEND');

/**
 * The x86_64 registers the firmware saves for each CPU, by the ids it
 * writes (our adaptation of POWER's GPRnn, NIA, MSR, ...): the general
 * registers, the instruction pointer and flags, the segment selectors and
 * bases, and the control registers.
 */
export const X86_64_REG_IDS = [
  'RAX', 'RBX', 'RCX', 'RDX', 'RSI', 'RDI', 'RBP', 'RSP', 'R8', 'R9', 'R10', 'R11', 'R12', 'R13', 'R14', 'R15',
  'RIP', 'RFLAGS', 'CS', 'SS', 'DS', 'ES', 'FS', 'GS', 'FS_BASE', 'GS_BASE', 'CR0', 'CR2', 'CR3', 'CR4',
] as const;
export type X86RegId = typeof X86_64_REG_IDS[number];

/** One CPU's state as the firmware finds it at ibm,os-term. */
export interface CpuRegisterState {
  cpu: number;
  regs: Readonly<Record<X86RegId, bigint>>;
}

/**
 * Bytes of the register save area for `nrCpus` CPUs: the header, the CPU
 * count, and per CPU CPUSTRT, every register, CPUEND.
 */
export function regSaveAreaBytes(nrCpus: number): number {
  return fadump_reg_save_area_header.size + 4 + nrCpus * (X86_64_REG_IDS.length + 2) * fadump_reg_entry.size;
}
