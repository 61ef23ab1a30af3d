import { DumpError, hex } from '../codec/index.js';
import {
  BuddyAllocator, configForRam, crashKexec, kdumpBoot, kernelPanic, kernelWallClock, pt_regs, kexecFrames, kexecLoaded, Kernel, MemMap, printk, readKernelHeader,
  LOGLEVEL_INFO, type CrashCause, type KernelConfig, type PanicInfo, type RunningSystem,
} from '../kernel/index.js';
import { DUMP_FLAGS_NONDISRUPT, DUMP_FLAGS_SOFTBOOT } from './lkcd/constants.js';
import { readDumpConfig } from './driver.js';
import { readBlock } from './memdev/block.js';
import { DUMP_STATE_ARMED } from './memdev/dump_config_block.js';
import { pendingDump } from './crashdump_boot.js';
import { runStage1, type Stage1Result } from './writer/stage1.js';
import { coldReboot, kexecReboot } from './softboot.js';
import { IND_DONE, IND_FLAGS, IND_INDIRECTION, IND_SOURCE } from '../kernel/structs/kimage.js';

export interface CrashOutcome {
  panic: PanicInfo;
  dump: Stage1Result | null;
  /** Why no dump was taken, when none was. */
  noDumpReason?: string;
  after: 'kexec' | 'cold-reboot' | 'halted' | 'kdump';
  console: string[];
  system: RunningSystem;
}

/** Configuration of the kernel the loaded kexec image will boot: its boot region is off limits. */
export function nextKernelConfig(kernel: Kernel): KernelConfig {
  const loaded = kexecLoaded(kernel);
  if (!loaded) return configForRam(kernel.ram.size);
  // The image header is the first page of the first segment: read it where kexec staged it.
  const headPage = readFirstSourcePage(kernel, loaded.image.head);
  const header = readKernelHeader(kernel.ram, headPage);
  return { release: header.release, physicalStart: header.physical_start };
}

function readFirstSourcePage(kernel: Kernel, head: bigint): bigint {
  let list = head & ~IND_FLAGS;
  for (let i = 0; i < 512; i++) {
    const e = kernel.ram.readU64(list + BigInt(i * 8));
    if (e & IND_SOURCE) return e & ~IND_FLAGS;
    if (e & IND_INDIRECTION) { list = e & ~IND_FLAGS; i = -1; }
    if (e & IND_DONE) break;
  }
  throw new DumpError('CORRUPT', 'kexec image has no source page');
}

/**
 * A crash, start to finish: the kernel panics (or oopses), stage 1 saves
 * the dump in memory if the driver is armed, then the machine kexecs into
 * the loaded kernel, or reboots cold when none is loaded.
 */
export interface CrashHooks {
  /** After the panic messages, before stage 1: RAM "just before the panic" as the dump must show it. */
  beforeDump?(sys: RunningSystem): void;
  /** After stage 1, before the reboot. */
  afterDump?(sys: RunningSystem): void;
}

export function crashMachine(sys: RunningSystem, cause: CrashCause, hooks: CrashHooks = {}): CrashOutcome {
  const kernel = sys.kernel;
  const consoleLines: string[] = [];
  const say = (l: string): void => { consoleLines.push(l); };
  const panic = kernelPanic(kernel, cause);
  sys.ram.flush();
  // panic() runs crash_kexec() before the panic notifiers, and the LKCD dump driver is one:
  // with a capture kernel loaded, kdump takes the crash and stage 1 never runs.
  const jump = crashKexec(kernel, panic);
  if (jump) {
    hooks.beforeDump?.(sys);
    say(`kdump: crash_kexec: registers saved in crash_notes, entering the capture kernel at ${hex(jump.entry)}`);
    return { panic, dump: null, noDumpReason: 'kdump took the crash (a panic kernel is loaded)', after: 'kdump', console: consoleLines, system: kdumpBoot(sys, jump) };
  }
  hooks.beforeDump?.(sys);
  const cfg = readDumpConfig(kernel);
  let dump: Stage1Result | null = null;
  let noDumpReason: string | undefined;
  const pending = pendingDump(kernel);
  if (pending && cfg.dump_addr === pending.addr) {
    noDumpReason = `a dump from the previous boot at ${hex(pending.addr)} still awaits writeout; it is kept, no new dump is taken`;
  } else if (!cfg.active || cfg.dump_addr === 0n) {
    noDumpReason = 'the dump driver is not configured (run lkcd config)';
  } else if (readBlock(sys.ram, Kernel.__pa(cfg.dump_addr)).state !== DUMP_STATE_ARMED) {
    noDumpReason = `a live dump at ${hex(cfg.dump_addr)} still awaits writeout; it is kept, no new dump is taken`;
  } else {
    dump = runStage1(kernel, Kernel.__pa(cfg.dump_addr), kexecFrames(kernel), {
      mode: 'panic', panic, nextKernel: nextKernelConfig(kernel), console: say,
    });
  }
  if (noDumpReason) say(`dump: ${noDumpReason}`);
  sys.ram.flush();
  hooks.afterDump?.(sys);
  const loaded = kexecLoaded(kernel);
  if ((cfg.flags & DUMP_FLAGS_NONDISRUPT) && dump) {
    say('dump: DUMP_FLAGS_NONDISRUPT set: the system is left halted after the dump');
    return { panic, dump, noDumpReason, after: 'halted', console: consoleLines, system: sys };
  }
  if (loaded) {
    say(`Rebooting in ${cfg.panic_timeout} seconds.. by starting a new kernel (${loaded.image.release})`);
    const next = kexecReboot(sys);
    return { panic, dump, noDumpReason, after: 'kexec', console: consoleLines, system: next };
  }
  const why = (cfg.flags & DUMP_FLAGS_SOFTBOOT) ? 'panic with DUMP_FLAGS_SOFTBOOT but no kexec image loaded' : 'panic with no kexec image loaded';
  say(`Rebooting: ${why}`);
  const next = coldReboot(sys, why);
  return { panic, dump, noDumpReason, after: 'cold-reboot', console: consoleLines, system: next };
}

/**
 * Alt+SysRq+d: stage 1 into free frames only, while the system keeps
 * running. The frames the dump takes leave the allocator; nothing the
 * running kernel or its processes use is touched.
 */
export function liveDump(sys: RunningSystem, hooks: CrashHooks = {}): { dump: Stage1Result; console: string[] } {
  const kernel = sys.kernel;
  const cfg = readDumpConfig(kernel);
  if (!cfg.active || cfg.dump_addr === 0n) throw new DumpError('USAGE', 'sysrq: dump: the dump driver is not configured (run lkcd config)');
  const consoleLines: string[] = [];
  const memmap = new MemMap(kernel);
  const buddy = new BuddyAllocator(kernel, memmap);
  const panic = liveDumpInfo(kernel);
  sys.ram.flush();
  hooks.beforeDump?.(sys);
  const dump = runStage1(kernel, Kernel.__pa(cfg.dump_addr), kexecFrames(kernel), {
    mode: 'live', panic, nextKernel: nextKernelConfig(kernel), buddy, console: (l) => consoleLines.push(l),
  });
  sys.ram.flush();
  hooks.afterDump?.(sys);
  printk(kernel, `sysrq: Dump: live dump of ${dump.pagesSaved} pages saved in ${dump.framesUsed} frames at ${hex(cfg.dump_addr)}${dump.truncated ? ' (TRUNCATED)' : ''}; system continues`, LOGLEVEL_INFO);
  sys.ram.flush();
  return { dump, console: consoleLines };
}

/** The header facts of a live dump: no panic; the time now and the registers of the sysrq handler. */
function liveDumpInfo(kernel: Kernel): PanicInfo {
  printk(kernel, 'sysrq: Dump', LOGLEVEL_INFO);
  const { sec, usec } = kernelWallClock(kernel);
  const regs = { ...pt_regs.zero(), ip: kernel.sym('sysrq_handle_dump').address + 0x1cn, cs: 0x10n, flags: 0x246n, ss: 0x18n, di: 0x64n, orig_ax: 0xffffffffffffffffn };
  return { message: 'sysrq', regs, currentTask: kernel.sym('init_task').address, timeSec: sec, timeUsec: usec };
}
