import { PciBus, PlatformFirmware, writeState } from '../machine/index.js';
import {
  bootKernel, buildKernel, configForRam, fadumpCleanup, loadImage, printk, readKernelImageFile, rtcBootTime,
  sim_workload, startWorkload, uts_namespace, profileByName, LOGLEVEL_EMERG, LOGLEVEL_WARNING, type RunningSystem,
} from '../kernel/index.js';
import {
  bootCommandLine, kmsgDump, parseKernelParams, rebootMode, KMSG_DUMP_EMERG, KMSG_DUMP_SHUTDOWN,
} from '../kernel/pstore/index.js';
import { findKernelTextElf } from '../kernel/workload/elf_text.js';
import { crashdumpReserve } from './crashdump_boot.js';
import { coldReset } from './softboot.js';

/** How a firmware reboot went: RAM kept (warm) or cleared (cold). */
export interface RebootOutcome { mode: 'warm' | 'cold'; system: RunningSystem }

/**
 * A reboot through the firmware (kernel_restart for `machine reboot`,
 * emergency_restart after a panic with no kexec image), as the kernel's
 * reboot= mode has it. Warm (reboot=warm): the firmware leaves RAM alone,
 * the boot loader loads the default kernel again with the same command
 * line, and whatever the boot does not overwrite keeps its bytes, the
 * ramoops region included. Cold (the default, as in Linux): the firmware's
 * memory test clears RAM. Before restarting, the kmsg dumpers run with
 * KMSG_DUMP_SHUTDOWN (a requested reboot) or KMSG_DUMP_EMERG (after a panic).
 */
export function firmwareReboot(sys: RunningSystem, why: string, opts: { requested: boolean }): RebootOutcome {
  const old = sys.kernel;
  const cmdline = bootCommandLine(old);
  const mode = rebootMode(parseKernelParams(cmdline));
  if (opts.requested) {
    // kernel_restart(): the message, then the kmsg dumpers, then machine_restart().
    printk(old, 'reboot: Restarting system', LOGLEVEL_EMERG);
    kmsgDump(old, KMSG_DUMP_SHUTDOWN);
  } else {
    kmsgDump(old, KMSG_DUMP_EMERG);
  }
  // machine_restart() -> fadump_cleanup(): a waiting dump is invalidated, a registration withdrawn.
  const firmware = new PlatformFirmware(sys.root, sys.ram);
  fadumpCleanup(old, firmware);
  sys.ram.flush();
  if (mode === 'cold') {
    const next = coldReset(sys);
    printk(next.kernel, `reboot: cold boot after ${why}; memory contents were lost`, LOGLEVEL_WARNING);
    next.ram.flush();
    return { mode, system: next };
  }
  const hostname = old.readStruct(uts_namespace, 'init_uts_ns').name.nodename;
  const wl = old.readStruct(sim_workload, 'sim_workload');
  const bootTime = rtcBootTime(sys.root, old);
  const config = configForRam(sys.ram.size);
  const image = readKernelImageFile(buildKernel(sys.root.bootDir, config, (maxBytes) => findKernelTextElf(maxBytes)).vmlinuz);
  const base = loadImage(sys.ram, image);
  firmware.boot('warm');
  const { kernel, cpu } = bootKernel(sys.ram, base, {
    cmdline, hostname, bootTime, seed: wl.seed + 1,
    earlyReserve: (k) => crashdumpReserve(k, config), firmware,
    bus: PciBus.open(sys.root),
  });
  printk(kernel, `reboot: warm boot after ${why}; memory contents were kept (reboot=warm)`, LOGLEVEL_WARNING);
  startWorkload(kernel, profileByName('idle'), wl.seed);
  sys.ram.flush();
  const state = { ...sys.state, power: 'on' as const, cpu };
  writeState(sys.root, state);
  return { mode, system: { ...sys, state, kernel } };
}

/** `machine reboot`: a requested restart, warm or cold as reboot= says. */
export function requestedReboot(sys: RunningSystem): RebootOutcome {
  return firmwareReboot(sys, 'a requested reboot', { requested: true });
}

