import { DumpError } from '../codec/index.js';
import { PciBus, PlatformFirmware, writeState } from '../machine/index.js';
import { bootKernel } from './boot.js';
import { readKernelHeader } from './kernel.js';
import type { CrashJump } from './kexec_crash.js';
import { rtcBootTime } from './rtc.js';
import { uts_namespace } from './structs/new_utsname.js';
import { closeSystem, powerOn, sim_workload, type RunningSystem } from './system.js';
import { readLoaderEntry } from './bootloader.js';
import { fadumpCleanup } from './fadump/capture.js';

/**
 * The capture kernel boots inside the crashkernel region: relocated to
 * where kexec put it, with the memory map, command line and initrd of its
 * zero page. RAM outside the region keeps its bytes.
 */
export function kdumpBoot(sys: RunningSystem, jump: CrashJump): RunningSystem {
  const old = sys.kernel;
  const uts = old.readStruct(uts_namespace, 'init_uts_ns').name;
  const wl = old.readStruct(sim_workload, 'sim_workload');
  readKernelHeader(sys.ram, jump.entry);
  const bootTime = rtcBootTime(sys.root, old);
  let booted;
  try {
    booted = bootKernel(sys.ram, jump.entry, {
      cmdline: '', hostname: uts.nodename, bootTime, seed: wl.seed + 1, zeroPage: jump.zeroPage,
      firmware: new PlatformFirmware(sys.root, sys.ram), bus: PciBus.open(sys.root),
    });
  } catch (e) {
    throw e instanceof DumpError ? new DumpError(e.code, `the capture kernel failed to boot: ${e.message}`, e.where, { cause: e }) : e;
  }
  const { kernel, cpu } = booted;
  kernel.writeStruct(sim_workload, 'sim_workload', { ...sim_workload.zero(), seed: wl.seed, profile: '' });
  sys.ram.flush();
  const state = { ...sys.state, power: 'on' as const, cpu };
  writeState(sys.root, state);
  return { ...sys, state, kernel };
}

/**
 * A reboot through the firmware: RAM does not survive, and the boot
 * loader's default entry boots on cleared memory (as `machine reset`, but
 * with the default entry's command line rather than the running kernel's).
 */
export function firmwareReboot(sys: RunningSystem): RunningSystem {
  const root = sys.root;
  const mem = sys.ram.size;
  const wl = sys.kernel.readStruct(sim_workload, 'sim_workload');
  const hostname = sys.kernel.readStruct(uts_namespace, 'init_uts_ns').name.nodename;
  const entry = readLoaderEntry(root);
  // machine_restart() -> fadump_cleanup(): a fadump capture boot invalidates its dump at the firmware.
  fadumpCleanup(sys.kernel, new PlatformFirmware(root, sys.ram));
  closeSystem(sys);
  return powerOn(root, { mem, profile: 'idle', seed: wl.seed, hostname, cmdline: entry?.options });
}
