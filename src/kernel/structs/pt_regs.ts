import { defineStruct, u64, type ValueOf } from '../../codec/index.js';

/** struct pt_regs (arch/x86/include/asm/ptrace.h, x86_64): 21 registers, 168 bytes. */
export const pt_regs = defineStruct('pt_regs', {
  r15: u64, r14: u64, r13: u64, r12: u64, bp: u64, bx: u64,
  r11: u64, r10: u64, r9: u64, r8: u64, ax: u64, cx: u64, dx: u64, si: u64, di: u64,
  orig_ax: u64, ip: u64, cs: u64, flags: u64, sp: u64, ss: u64,
});
export type PtRegs = ValueOf<typeof pt_regs>;
