import { array, defineStruct, i32, u32, u64, type ValueOf } from '../../codec/index.js';
import { pt_regs } from '../../kernel/structs/pt_regs.js';
import { DUMP_MAX_NUM_CPUS } from './constants.js';

/**
 * dump_header_asm_t for x86_64 (include/asm-x86_64/dump.h; crash
 * lkcd_dump_v8.h X86_64 block), packed: registers of the dumping CPU, then
 * per-CPU registers, current tasks, stacks and stack pointers, each an
 * array of NR_CPUS, the kernel's configured CPU count. Its size is
 * 192 + 192 * NR_CPUS, so dha_header_size says which NR_CPUS wrote it (crash
 * lkcd_dump_init_v8_arch derives it the same way).
 */
function dumpHeaderAsmOf(nrCpus: number) {
  return defineStruct('dump_header_asm', {
    dha_magic_number: u64,
    dha_version: u32,
    dha_header_size: u32,
    dha_regs: pt_regs,
    dha_smp_num_cpus: u32,
    dha_dumping_cpu: i32,
    dha_smp_regs: array(pt_regs, nrCpus),
    dha_smp_current_task: array(u64, nrCpus),
    dha_stack: array(u64, nrCpus),
    dha_stack_ptr: array(u64, nrCpus),
  });
}

/** The arch header our writer emits: DUMP_MAX_NUM_CPUS (32) CPUs, 6336 bytes. */
export const dump_header_asm = dumpHeaderAsmOf(DUMP_MAX_NUM_CPUS);
export type DumpHeaderAsm = ValueOf<typeof dump_header_asm>;

/** The first three members, which say what the rest is: read before NR_CPUS is known. */
export const dump_header_asm_head = defineStruct('dump_header_asm', {
  dha_magic_number: u64,
  dha_version: u32,
  dha_header_size: u32,
});

/** Bytes before dha_smp_regs: what does not depend on NR_CPUS (192). */
export const DUMP_HEADER_ASM_FIXED_SIZE = dump_header_asm.offsetOf.dha_smp_regs;
/** Bytes per CPU: a pt_regs and three u64 (crash's dump_CPU_info_t, 192). */
export const DUMP_HEADER_ASM_CPU_SIZE = pt_regs.size + 3 * u64.size;
/** Largest NR_CPUS read: x86_64's CONFIG_NR_CPUS range ends at 8192 (MAXSMP). */
export const DUMP_ASM_NR_CPUS_MAX = 8192;

/**
 * NR_CPUS of an arch header of `size` bytes, or null when no NR_CPUS in
 * 1..DUMP_ASM_NR_CPUS_MAX gives that size.
 */
export function nrCpusOfAsmSize(size: number): number | null {
  const per = size - DUMP_HEADER_ASM_FIXED_SIZE;
  if (per <= 0 || per % DUMP_HEADER_ASM_CPU_SIZE !== 0) return null;
  const n = per / DUMP_HEADER_ASM_CPU_SIZE;
  return n <= DUMP_ASM_NR_CPUS_MAX ? n : null;
}

/** The x86_64 arch header codec for `nrCpus` CPUs (the arrays are that long). */
export function dumpHeaderAsmFor(nrCpus: number): typeof dump_header_asm {
  return nrCpus === DUMP_MAX_NUM_CPUS ? dump_header_asm : dumpHeaderAsmOf(nrCpus);
}
