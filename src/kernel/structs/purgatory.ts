import { defineStruct, u64, type ValueOf } from '../../codec/index.js';

/**
 * The simulated purgatory's parameters (our stand-in for kexec-tools'
 * purgatory/ code and the variables it patches in with elf_rel_set_symbol):
 * the page kimage.start points at. At a crash it copies the backup source
 * (the low 640 KiB) into the backup segment and enters the kernel with
 * the zero page, as arch/i386/crashdump_backup.c and entry64.S do.
 */
export const sim_purgatory = defineStruct('sim_purgatory', {
  magic: u64,
  /** Physical entry of the kernel (its load address). */
  entry: u64,
  /** Physical address of struct boot_params, handed over in %rsi. */
  zero_page: u64,
  backup_src_start: u64,
  backup_src_size: u64,
  /** Where the backup goes, inside the crashkernel region (0: no backup). */
  backup_start: u64,
});
export type SimPurgatory = ValueOf<typeof sim_purgatory>;

export const SIM_PURGATORY_MAGIC = 0x59524f5441475255n; // "URGATORY" little-endian
