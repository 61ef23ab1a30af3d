/**
 * The kernel's half of a kdump crash (kernel/crash_core.c, kernel/kexec_core.c,
 * arch/x86/kernel/crash.c): the per-CPU crash_notes buffers that hold each
 * CPU's NT_PRSTATUS after a crash, and CRASHTIME appended to VMCOREINFO.
 */
import { NT_PRSTATUS, elf_prstatus, encodeElfNote, type UserRegName } from '../codec/index.js';
import { NR_CPUS } from './constants.js';
import type { Kernel } from './kernel.js';
import { CRASH_CORE_NOTE_BYTES, KEXEC_CORE_NOTE_NAME } from './structs/crash_notes.js';
import type { PtRegs } from './structs/pt_regs.js';
import { appendVmcoreinfo } from './vmcoreinfo.js';

/** pt_regs member -> user_regs_struct member (ELF_CORE_COPY_REGS on x86_64). */
export const PT_REGS_TO_USER_REGS: { readonly [K in keyof PtRegs]: UserRegName } = {
  r15: 'r15', r14: 'r14', r13: 'r13', r12: 'r12', bp: 'rbp', bx: 'rbx', r11: 'r11', r10: 'r10', r9: 'r9', r8: 'r8',
  ax: 'rax', cx: 'rcx', dx: 'rdx', si: 'rsi', di: 'rdi', orig_ax: 'orig_rax', ip: 'rip', cs: 'cs', flags: 'eflags',
  sp: 'rsp', ss: 'ss',
};

/** crash_notes_memory_init(): crash_notes points at zeroed per-CPU note buffers. */
export function initCrashNotes(kernel: Kernel): void {
  kernel.writeBytes('crash_notes_buf', Buffer.alloc(CRASH_CORE_NOTE_BYTES * NR_CPUS));
  kernel.writeU64('crash_notes', kernel.sym('crash_notes_buf').address);
}

/** /sys/devices/system/cpu/cpuN/crash_notes and crash_notes_size: physical address and size of CPU n's buffer. */
export function crashNotesLocation(kernel: Kernel, cpu: number): { paddr: bigint; size: number } {
  return { paddr: kernel.pa(kernel.readU64('crash_notes')) + BigInt(cpu * CRASH_CORE_NOTE_BYTES), size: CRASH_CORE_NOTE_BYTES };
}

/**
 * crash_save_cpu(): the CPU's registers as an NT_PRSTATUS note ("CORE",
 * pr_pid the current task's pid), then the empty final note, in its
 * crash_notes buffer.
 */
export function crashSaveCpu(kernel: Kernel, cpu: number, regs: PtRegs, pid: number): void {
  const pr = elf_prstatus.zero();
  pr.pr_pid = pid;
  for (const [name, user] of Object.entries(PT_REGS_TO_USER_REGS) as Array<[keyof PtRegs, UserRegName]>) pr.pr_reg[user] = regs[name];
  const buf = Buffer.alloc(CRASH_CORE_NOTE_BYTES);
  buf.set(encodeElfNote(KEXEC_CORE_NOTE_NAME, NT_PRSTATUS, elf_prstatus.toBytes(pr)));
  kernel.ram.write(crashNotesLocation(kernel, cpu).paddr, buf);
}

/** crash_save_vmcoreinfo(): CRASHTIME=<seconds> appended, the note rewritten. */
export function crashSaveVmcoreinfo(kernel: Kernel, crashTime: bigint): void {
  appendVmcoreinfo(kernel, `CRASHTIME=${crashTime}\n`);
}
