import { array, defineStruct, i32, u32, u64, type ValueOf } from '../../codec/index.js';
import { pt_regs } from '../../kernel/structs/pt_regs.js';
import { DUMP_MAX_NUM_CPUS } from './constants.js';

/**
 * dump_header_asm_t for x86_64 (include/asm-x86_64/dump.h; crash
 * lkcd_dump_v8.h X86_64 block): registers of the dumping CPU, then per-CPU
 * registers, current tasks, stacks and stack pointers for DUMP_MAX_NUM_CPUS.
 * 192 + 192 * 32 = 6336 bytes.
 */
export const dump_header_asm = defineStruct('dump_header_asm', {
  dha_magic_number: u64,
  dha_version: u32,
  dha_header_size: u32,
  dha_regs: pt_regs,
  dha_smp_num_cpus: u32,
  dha_dumping_cpu: i32,
  dha_smp_regs: array(pt_regs, DUMP_MAX_NUM_CPUS),
  dha_smp_current_task: array(u64, DUMP_MAX_NUM_CPUS),
  dha_stack: array(u64, DUMP_MAX_NUM_CPUS),
  dha_stack_ptr: array(u64, DUMP_MAX_NUM_CPUS),
});
export type DumpHeaderAsm = ValueOf<typeof dump_header_asm>;
