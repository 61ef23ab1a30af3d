import { LOGLEVEL_ALERT, LOGLEVEL_EMERG, LOGLEVEL_INFO, LOGLEVEL_WARNING } from './constants.js';
import type { Kernel } from './kernel.js';
import { advanceClock, printk } from './printk.js';
import { pt_regs, type PtRegs } from './structs/pt_regs.js';
import { listTasks, type TaskInfo } from './tasks.js';
import { uts_namespace } from './structs/new_utsname.js';
import { KMSG_DUMP_OOPS } from './pstore/constants.js';
import { kmsgDump } from './pstore/platform.js';

/** How the kernel came to crash. */
export type CrashCause =
  | { kind: 'panic'; message: string }
  | { kind: 'sysrq-c' }
  | { kind: 'oops' };

export interface PanicInfo {
  message: string;
  regs: PtRegs;
  /** task_struct address of the task that was running (dh_current_task). */
  currentTask: bigint;
  timeSec: bigint;
  timeUsec: bigint;
}

/** Wall-clock time now, from the boot time and the kernel's clock. */
export function kernelWallClock(kernel: Kernel): { sec: bigint; usec: bigint } {
  const ns = kernel.readU64('sim_clock_ns');
  return { sec: kernel.readU64('sim_boot_time') + ns / 1_000_000_000n, usec: (ns % 1_000_000_000n) / 1000n };
}

/**
 * The task on the CPU when a crash or an interrupt comes: the first running
 * user task in the task list, else the last task (an idle machine's).
 */
export function interruptedTask(tasks: TaskInfo[]): TaskInfo {
  return tasks.find((t) => t.mm !== 0n && t.state === 0n) ?? tasks[tasks.length - 1];
}

function regsAt(kernel: Kernel, fn: string, offset: bigint, sp: bigint): PtRegs {
  return {
    ...pt_regs.zero(), ip: kernel.sym(fn).address + offset, cs: 0x10n, flags: 0x10246n, sp, ss: 0x18n,
    ax: 0n, bx: 0x63n, cx: 0x1n, dx: 0n, si: 0xffffffff82000000n, di: 0x63n, orig_ax: 0xffffffffffffffffn, bp: sp + 0x18n,
  };
}

/**
 * The kernel's side of a crash: what panic(), sysrq_handle_crash() or an
 * oops in the simulated driver print, with the registers of the crashing
 * CPU saved in crash_regs (crash_setup_regs). Nothing after this point
 * writes the kernel's log until the dump is saved.
 */
export function kernelPanic(kernel: Kernel, cause: CrashCause): PanicInfo {
  const tasks = listTasks(kernel.mem, kernel.sym('init_task').address);
  const current = interruptedTask(tasks);
  const sp = current.stack + 0x3f00n;
  const uts = kernel.readStruct(uts_namespace, 'init_uts_ns').name;
  advanceClock(kernel, 1_000_123n);
  let message: string;
  let regs: PtRegs;
  const cpuLine = `CPU: 0 PID: ${current.pid} Comm: ${current.comm} Not tainted ${uts.release} ${uts.version}`;
  switch (cause.kind) {
    case 'panic':
      message = cause.message;
      regs = regsAt(kernel, 'panic', 0x10fn, sp);
      break;
    case 'sysrq-c':
      printk(kernel, 'sysrq: Trigger a crash', LOGLEVEL_INFO);
      message = 'sysrq triggered crash';
      regs = regsAt(kernel, 'sysrq_handle_crash', 0x16n, sp);
      printk(kernel, 'BUG: kernel NULL pointer dereference, address: 0000000000000000', LOGLEVEL_ALERT);
      printk(kernel, '#PF: supervisor write access in kernel mode', LOGLEVEL_ALERT);
      printk(kernel, 'Oops: 0002 [#1] SMP NOPTI', LOGLEVEL_WARNING);
      printk(kernel, cpuLine, LOGLEVEL_WARNING);
      printk(kernel, 'RIP: 0010:sysrq_handle_crash+0x16/0x20', LOGLEVEL_WARNING);
      // oops_end() -> oops_exit(): the oops is dumped before panic_on_oops panics.
      kmsgDump(kernel, KMSG_DUMP_OOPS);
      break;
    case 'oops':
      message = 'Fatal exception';
      regs = regsAt(kernel, 'sim_driver_oops', 0x2an, sp);
      printDriverOops(kernel, cpuLine);
      kmsgDump(kernel, KMSG_DUMP_OOPS);
      break;
  }
  printk(kernel, `Kernel panic - not syncing: ${message}`, LOGLEVEL_EMERG);
  kernel.writeStruct(pt_regs, 'crash_regs', regs);
  kernel.writeU32('panic_cpu', 0);
  const { sec, usec } = kernelWallClock(kernel);
  return { message, regs, currentTask: current.address, timeSec: sec, timeUsec: usec };
}

/** The oops of the simulated driver: a bad page fault in sim_driver_oops, reached from an ioctl. */
function printDriverOops(kernel: Kernel, cpuLine: string): void {
  printk(kernel, 'BUG: unable to handle page fault for address: ffffc90000bad000', LOGLEVEL_ALERT);
  printk(kernel, '#PF: supervisor read access in kernel mode', LOGLEVEL_ALERT);
  printk(kernel, 'Oops: 0000 [#1] SMP NOPTI', LOGLEVEL_WARNING);
  printk(kernel, cpuLine, LOGLEVEL_WARNING);
  printk(kernel, 'RIP: 0010:sim_driver_oops+0x2a/0x60 [sim_driver]', LOGLEVEL_WARNING);
  printk(kernel, 'Call Trace:', LOGLEVEL_WARNING);
  printk(kernel, ' sim_driver_ioctl+0x51/0x90 [sim_driver]', LOGLEVEL_WARNING);
  printk(kernel, ' ksys_ioctl+0x87/0xc0', LOGLEVEL_WARNING);
  printk(kernel, ' do_syscall_64+0x55/0x110', LOGLEVEL_WARNING);
  printk(kernel, ' entry_SYSCALL_64_after_hwframe+0x44/0xa9', LOGLEVEL_WARNING);
}

/**
 * An oops the kernel survives (panic_on_oops=0): the simulated driver's
 * page fault is reported, oops_exit() hands the log to the kmsg dumpers
 * (pstore keeps it as an "Oops" record), and the task that faulted is
 * killed while the kernel runs on. Returns the dmesg zone written, if any.
 */
export function kernelOops(kernel: Kernel): number | null {
  const tasks = listTasks(kernel.mem, kernel.sym('init_task').address);
  const current = tasks.find((t) => t.mm !== 0n && t.state === 0n) ?? tasks[tasks.length - 1];
  const uts = kernel.readStruct(uts_namespace, 'init_uts_ns').name;
  advanceClock(kernel, 1_000_123n);
  printDriverOops(kernel, `CPU: 0 PID: ${current.pid} Comm: ${current.comm} Tainted: G      D           ${uts.release} ${uts.version}`);
  printk(kernel, '---[ end trace 0000000000000000 ]---', LOGLEVEL_WARNING);
  return kmsgDump(kernel, KMSG_DUMP_OOPS);
}
