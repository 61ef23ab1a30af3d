import { PciBus, PlatformFirmware, writeState } from '../machine/index.js';
import {
  bootKernel, configForRam, fadumpCleanup, machineKexec, powerOn, printk, readKernelHeader, rtcBootTime, rtcFollowKernel, sim_workload, uts_namespace,
  LOGLEVEL_WARNING, type RunningSystem,
} from '../kernel/index.js';
import { crashdumpReserve } from './crashdump_boot.js';
import { reloadKexecForHeldDump } from './held_dump.js';

/**
 * A warm reboot into the loaded kexec image (machine_kexec): the segments
 * are copied to their destinations, the new kernel boots with the command
 * line it was loaded with, and, when that carries crashdump=, reserves the
 * saved dump before anything else and reloads kexec to keep it across a
 * second crash. RAM outside the new kernel's boot region keeps its bytes.
 */
/**
 * `deviceDumps: false`: the crash that leads here took no dump (one from an
 * earlier crash is held): the next kernel's drivers initialise their
 * devices as at an ordinary boot, since a device dump now would be of this
 * crash, not of the held dump's.
 */
export function kexecReboot(sys: RunningSystem, opts: { deviceDumps?: boolean } = {}): RunningSystem {
  const old = sys.kernel;
  const uts = old.readStruct(uts_namespace, 'init_uts_ns').name;
  const wl = old.readStruct(sim_workload, 'sim_workload');
  // The kexec down path withdraws a fadump registration: the firmware must not copy boot memory over the next kernel.
  const firmware = new PlatformFirmware(sys.root, sys.ram);
  fadumpCleanup(old, firmware);
  // The RTC has gone on with the old kernel's clock; the kexec takes a second of it.
  const bootTime = rtcBootTime(sys.root, old);
  const jump = machineKexec(old);
  const header = readKernelHeader(sys.ram, jump.entry);
  const config = { release: header.release, physicalStart: header.physical_start };
  const { kernel, cpu } = bootKernel(sys.ram, jump.entry, {
    cmdline: jump.cmdline,
    hostname: uts.nodename,
    bootTime,
    seed: wl.seed + 1,
    earlyReserve: (k) => crashdumpReserve(k, config),
    firmware,
    bus: PciBus.open(sys.root),
    deviceDumps: opts.deviceDumps,
  });
  kernel.writeStruct(sim_workload, 'sim_workload', { ...wl, generation: 0, run_seconds: 0n });
  // Holding a dump, the new kernel reloads kexec with the same crashdump= (LKCD's init scripts did).
  reloadKexecForHeldDump(kernel, sys.root);
  sys.ram.flush();
  const state = { ...sys.state, power: 'on' as const, cpu };
  writeState(sys.root, state);
  return { ...sys, state, kernel };
}

/**
 * A cold reboot after a panic with no kexec image: RAM does not survive,
 * so the firmware boots the default kernel on cleared memory, and the new
 * kernel's log says why.
 */
export function coldReboot(sys: RunningSystem, reason: string): RunningSystem {
  const wl = sys.kernel.readStruct(sim_workload, 'sim_workload');
  const fresh = replaceRam(sys, (root, mem) => powerOn(root, { mem, profile: 'idle', seed: wl.seed, commit: false }));
  printk(fresh.kernel, `reboot: cold boot after ${reason}; memory contents were lost`, LOGLEVEL_WARNING);
  fresh.ram.flush();
  return fresh;
}

/**
 * A cold boot within the running step: the old RAM is let go of without a
 * commit (its contents are lost anyway) and the new image replaces it when
 * the step commits, so a kill before then leaves the machine as it was
 * before the command. The lock stays with the command.
 */
function replaceRam(sys: RunningSystem, boot: (root: RunningSystem['root'], mem: bigint) => RunningSystem): RunningSystem {
  const { root, lock } = sys;
  const mem = sys.ram.size;
  // The RTC ran on until the power went: the cold boot reads it after the old kernel's last moment.
  rtcFollowKernel(root, sys.kernel);
  sys.ram.detach();
  const fresh = boot(root, mem);
  // powerOn's own hold is nested in the command's: the command's goes on with the new system.
  fresh.lock?.release();
  return { ...fresh, lock };
}


/**
 * The reset button: power is cut and restored, RAM does not survive, and
 * the boot loader boots the kernel again with the command line it last
 * used (as an autoboot entry would). A crashdump= on it now points at
 * cleared memory: the new kernel says so and boots normally.
 */
export function coldReset(sys: RunningSystem): RunningSystem {
  const k = sys.kernel;
  const raw = k.readBytes('boot_command_line');
  const cmdline = raw.subarray(0, raw.indexOf(0)).toString('latin1');
  const hostname = k.readStruct(uts_namespace, 'init_uts_ns').name.nodename;
  const wl = k.readStruct(sim_workload, 'sim_workload');
  const config = configForRam(sys.ram.size);
  return replaceRam(sys, (root, mem) => powerOn(root, { mem, profile: 'idle', seed: wl.seed, hostname, cmdline, commit: false, earlyReserve: (kk) => crashdumpReserve(kk, config) }));
}
