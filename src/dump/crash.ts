import { DumpError, hex } from '../codec/index.js';
import {
  BuddyAllocator, configForRam, crashFadump, crashKexec, fadumpOsTerm, interruptedTask, kdumpBoot, kernelPanic, kernelWallClock, pt_regs, kexecCrashLoaded, kexecEntries, kexecFrames,
  hostClock, kexecLoaded, Kernel, vmcoreddDumps, listTasks, MemMap, pciRegisterReader, printk, readKernelHeader, THREAD_SIZE_ORDER, LOGLEVEL_INFO, type CrashCause, type KernelConfig,
  type PanicInfo, type RunningSystem,
} from '../kernel/index.js';
import { PAGE_SIZE, PciBus, PlatformFirmware } from '../machine/index.js';
import type { Kimage } from '../kernel/structs/kimage.js';
import { DUMP_FLAGS_NONDISRUPT, DUMP_FLAGS_SOFTBOOT } from './lkcd/constants.js';
import { readDumpConfig } from './driver.js';
import { readBlock } from './memdev/block.js';
import { DUMP_STATE_ARMED } from './memdev/dump_config_block.js';
import { pendingDump } from './crashdump_boot.js';
import { runStage1, type Stage1Result } from './writer/stage1.js';
import { coldReboot, kexecReboot } from './softboot.js';
import { IND_FLAGS, IND_SOURCE } from '../kernel/structs/kimage.js';
import {
  bootCommandLine, devcdPanicNotifier, kmsgDump, parseKernelParams, ramoopsFrames, rebootMode, KMSG_DUMP_PANIC,
} from '../kernel/pstore/index.js';
import { firmwareReboot } from './reboot.js';

export interface CrashOutcome {
  panic: PanicInfo;
  dump: Stage1Result | null;
  /** Why no dump was taken, when none was. */
  noDumpReason?: string;
  /**
   * The address of a dump already held in memory when the crash came (from
   * the previous boot, or a live dump awaiting writeout): no new dump is
   * taken, and this one is kept by a kexec, lost by a cold reboot.
   */
  heldDump?: bigint;
  after: 'kexec' | 'cold-reboot' | 'warm-reboot' | 'halted' | 'kdump' | 'fadump';
  /** What pstore kept: the dmesg zone of the panic record, the devices the devcoredump notifier dumped. */
  pstore: { dmesgZone: number | null; devcd: { dumped: string[]; skipped: string[] } | null };
  console: string[];
  system: RunningSystem;
}

/** Configuration of the kernel the loaded kexec image will boot: its boot region is off limits. */
export function nextKernelConfig(kernel: Kernel): KernelConfig {
  const loaded = kexecLoaded(kernel);
  if (!loaded) return configForRam(kernel.ram.size);
  // The image header is the first page of the first segment: read it where kexec staged it.
  const headPage = readFirstSourcePage(kernel, loaded.image);
  const header = readKernelHeader(kernel.ram, headPage);
  return { release: header.release, physicalStart: header.physical_start };
}

/** The first source page of a loaded image, through the bounded walk of its indirection list. */
function readFirstSourcePage(kernel: Kernel, image: Kimage): bigint {
  for (const { entry } of kexecEntries(kernel, image)) {
    if (entry & IND_SOURCE) return entry & ~IND_FLAGS;
  }
  throw new DumpError('CORRUPT', 'kexec image has no source page', { struct: 'kimage', field: 'head' });
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
  /** After the panic's last write to RAM (the kmsg dump), before the machine restarts. */
  beforeReboot?(sys: RunningSystem): void;
  /** Stage 1's progress (pages saved, pages selected), for a progress bar on a terminal. */
  onStage1Progress?(done: bigint, total: bigint): void;
}

export function crashMachine(sys: RunningSystem, cause: CrashCause, hooks: CrashHooks = {}): CrashOutcome {
  const kernel = sys.kernel;
  const consoleLines: string[] = [];
  const say = (l: string): void => { consoleLines.push(l); };
  const panic = kernelPanic(kernel, cause);
  sys.ram.flush();
  // The devices see the host stop: each reacts on its own (the NVMe controller's firmware asserts).
  const bus = PciBus.open(sys.root);
  bus.hostCrash(hostClock(kernel));
  bus.flush();
  // fadump first: setup_fadump() forces crash_kexec_post_notifiers, and its panic notifier runs
  // before every other (priority INT_MAX, "to notify the firmware ASAP", as since Linux 6.0): so
  // with fadump registered neither kdump, nor stage 1 of the LKCD driver, nor the device-coredump
  // notifier, nor the panic kmsg_dump runs; the firmware preserves memory as the panic left it.
  const fadump = crashFadump(kernel, panic);
  if (fadump) {
    say(`fadump: crash_fadump: crash info header at ${hex(fadump.headerAddr)} filled, calling ibm,os-term`);
    const firmware = new PlatformFirmware(sys.root, sys.ram);
    if (firmware.registration()) hooks.beforeDump?.(sys);
    const term = fadumpOsTerm(sys, fadump, firmware);
    if (term) {
      const rmr = term.dump.rmr_region;
      say(`fadump: the firmware saved the CPU state and copied boot memory [0x0-${hex(rmr.source_len - 1n)}] to ${hex(rmr.destination_address)}; restarting without clearing memory`);
      return { panic, dump: null, noDumpReason: 'fadump took the crash (firmware-assisted dump registered)', after: 'fadump', console: consoleLines, system: term.system, pstore: { dmesgZone: null, devcd: null } };
    }
    say('fadump: ibm,os-term: the firmware holds no registration; the panic goes on');
  }
  // panic() runs crash_kexec() before the panic notifiers (the LKCD dump driver and the device-coredump
  // notifier are ones) and before kmsg_dump(): with a capture kernel loaded, kdump takes the crash and
  // neither stage 1 nor pstore runs. crash_kexec_post_notifiers moves crash_kexec() after the notifiers
  // and kmsg_dump(); the LKCD driver still stands aside then, as its stage 1 would reuse frames the
  // capture kernel reads through /proc/vmcore.
  const postNotifiers = /(^|\s)crash_kexec_post_notifiers(\s|$)/.test(bootCommandLine(kernel));
  const toKdump = (pstore: CrashOutcome['pstore']): CrashOutcome | null => {
    const jump = crashKexec(kernel, panic);
    if (!jump) return null;
    hooks.beforeDump?.(sys);
    say(`kdump: crash_kexec: registers saved in crash_notes, entering the capture kernel at ${hex(jump.entry)}`);
    return { panic, dump: null, noDumpReason: 'kdump took the crash (a panic kernel is loaded)', after: 'kdump', console: consoleLines, system: kdumpBoot(sys, jump), pstore };
  };
  if (!postNotifiers) {
    const kdump = toKdump({ dmesgZone: null, devcd: null });
    if (kdump) return kdump;
  }
  // The notifiers: the device-coredump notifier is registered with a higher priority than the dump
  // driver's, so device state is copied before stage 1 reuses any frame.
  const devcd = devcdPanicNotifier(kernel, pciRegisterReader(bus));
  sys.ram.flush();
  if (postNotifiers && kexecCrashLoaded(kernel)) {
    const kdump = toKdump({ dmesgZone: kmsgDump(kernel, KMSG_DUMP_PANIC), devcd });
    if (kdump) return kdump;
  }
  hooks.beforeDump?.(sys);
  const cfg = readDumpConfig(kernel);
  let dump: Stage1Result | null = null;
  let noDumpReason: string | undefined;
  const pending = pendingDump(kernel);
  let heldDump: bigint | undefined;
  if (pending && cfg.dump_addr === pending.addr) {
    heldDump = pending.addr;
    noDumpReason = `a dump from the previous boot at ${hex(pending.addr)} still awaits writeout; it is kept, no new dump is taken`;
  } else if (!cfg.active || cfg.dump_addr === 0n) {
    heldDump = pending?.addr;
    noDumpReason = 'the dump driver is not configured (run lkcd config)';
  } else if (readBlock(sys.ram, Kernel.__pa(cfg.dump_addr)).state !== DUMP_STATE_ARMED) {
    heldDump = cfg.dump_addr;
    noDumpReason = `a live dump at ${hex(cfg.dump_addr)} still awaits writeout; it is kept, no new dump is taken`;
  } else {
    // The ramoops region is needed after the reboot, like the kexec image: saved, never reused.
    dump = runStage1(kernel, Kernel.__pa(cfg.dump_addr), [...kexecFrames(kernel), ...ramoopsFrames(kernel)], {
      mode: 'panic', panic, nextKernel: nextKernelConfig(kernel), console: say, onProgress: hooks.onStage1Progress ? (p) => hooks.onStage1Progress!(BigInt(p.pagesSaved), BigInt(p.pagesSelected)) : undefined,
    });
  }
  if (noDumpReason) say(`dump: ${noDumpReason}`);
  // The device dumps this crash recovery kernel took for the held dump are in its own memory: lost now.
  const lostDevdumps = heldDump !== undefined ? vmcoreddDumps(kernel).length : 0;
  if (lostDevdumps) say(`dump: the ${lostDevdumps} device dump${lostDevdumps === 1 ? '' : 's'} taken for that dump were in this kernel's memory and are lost; it will be written out without them`);
  sys.ram.flush();
  hooks.afterDump?.(sys);
  // The dump driver's notifier returned: panic() goes on to kmsg_dump(), then the restart, which
  // the soft-boot driver turns into a kexec.
  const pstore = { dmesgZone: kmsgDump(kernel, KMSG_DUMP_PANIC), devcd };
  sys.ram.flush();
  hooks.beforeReboot?.(sys);
  const loaded = kexecLoaded(kernel);
  if ((cfg.flags & DUMP_FLAGS_NONDISRUPT) && dump) {
    say('dump: DUMP_FLAGS_NONDISRUPT set: the system is left halted after the dump');
    return { panic, dump, noDumpReason, heldDump, after: 'halted', console: consoleLines, system: sys, pstore };
  }
  if (loaded) {
    say(`Rebooting in ${cfg.panic_timeout} seconds.. by starting a new kernel (${loaded.image.release})`);
    // A held dump (from an earlier crash) gets no device dumps of this one: see kexecReboot.
    const next = kexecReboot(sys, { deviceDumps: heldDump === undefined });
    return { panic, dump, noDumpReason, heldDump, after: 'kexec', console: consoleLines, system: next, pstore };
  }
  const why = (cfg.flags & DUMP_FLAGS_SOFTBOOT) ? 'panic with DUMP_FLAGS_SOFTBOOT but no kexec image loaded' : 'panic with no kexec image loaded';
  // emergency_restart() through the firmware: RAM survives it only with reboot=warm.
  if (rebootMode(parseKernelParams(bootCommandLine(kernel))) === 'warm') {
    say(`Rebooting: ${why} (reboot=warm: memory is kept)`);
    const next = firmwareReboot(sys, why, { requested: false }).system;
    return { panic, dump, noDumpReason, heldDump, after: 'warm-reboot', console: consoleLines, system: next, pstore };
  }
  say(`Rebooting: ${why}`);
  const next = coldReboot(sys, why);
  return { panic, dump, noDumpReason, heldDump, after: 'cold-reboot', console: consoleLines, system: next, pstore };
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
  const dump = runStage1(kernel, Kernel.__pa(cfg.dump_addr), [...kexecFrames(kernel), ...ramoopsFrames(kernel)], {
    mode: 'live', panic, nextKernel: nextKernelConfig(kernel), buddy, console: (l) => consoleLines.push(l),
  });
  sys.ram.flush();
  hooks.afterDump?.(sys);
  printk(kernel, `sysrq: Dump: live dump of ${dump.pagesSaved} pages saved in ${dump.framesUsed} frames at ${hex(cfg.dump_addr)}${dump.truncated ? ' (TRUNCATED)' : ''}; system continues`, LOGLEVEL_INFO);
  sys.ram.flush();
  return { dump, console: consoleLines };
}

/**
 * The header facts of a live dump: no panic; the time now, and the
 * registers and task of the context Alt+SysRq+d interrupted (the
 * keyboard interrupt lands on whatever task runs on the CPU): a running
 * task from the task list in RAM, its ip inside the function it runs, its
 * stack pointer inside its kernel stack, as the interrupt's pt_regs would
 * hold them.
 */
function liveDumpInfo(kernel: Kernel): PanicInfo {
  printk(kernel, 'sysrq: Dump', LOGLEVEL_INFO);
  const { sec, usec } = kernelWallClock(kernel);
  const task = interruptedTask(listTasks(kernel.mem, kernel.sym('init_task').address));
  const stackSize = BigInt(PAGE_SIZE << THREAD_SIZE_ORDER);
  const fn = kernel.symbols.find((sy) => sy.type === 'T' && task.thread_regs.ip >= sy.address && task.thread_regs.ip < sy.address + sy.size)
    ?? kernel.sym('do_idle');
  // An instruction a little way into the function, 8-byte steps so it is never past its end.
  const ip = fn.address + ((BigInt(task.pid) * 0x18n + 0x2an) % (fn.size > 8n ? fn.size - 8n : 1n));
  // The interrupt frame sits just below the task's saved kernel stack pointer, inside its stack.
  const savedSp = task.thread_regs.sp >= task.stack && task.thread_regs.sp < task.stack + stackSize ? task.thread_regs.sp : task.stack + stackSize - 0x100n;
  const sp = savedSp - BigInt(pt_regs.size) - 0x40n;
  const regs = {
    ...pt_regs.zero(), ip, sp, bp: sp + 0x30n, cs: 0x10n, flags: 0x246n, ss: 0x18n, orig_ax: 0xffffffffffffffffn,
    di: task.address, si: 0x64n,
  };
  return { message: 'sysrq', regs, currentTask: task.address, timeSec: sec, timeUsec: usec };
}
