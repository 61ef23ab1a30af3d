import { advanceRtc, readRtc, type MachineRoot, type RtcTime } from '../machine/index.js';
import type { Kernel } from './kernel.js';

/**
 * Simulated seconds from a restart to the new kernel reading the RTC (the
 * firmware or purgatory, the boot loader, early boot): every boot takes at
 * least this long, so no two boots of a machine share a boot time.
 */
export const BOOT_SECONDS = 1n;

/** The kernel's wall clock now: its boot time plus its local clock (ktime_get_real). */
export function kernelRealTime(kernel: Kernel): RtcTime {
  const ns = kernel.readU64('sim_clock_ns');
  return { sec: kernel.readU64('sim_boot_time') + ns / 1_000_000_000n, nsec: Number(ns % 1_000_000_000n) };
}

/**
 * The RTC ticks along with the running kernel: simulated time passes only
 * where the kernel's clock advances (boot, the workload, a panic), so at
 * the end of every step, and before any restart, the RTC reads at least
 * the kernel's wall clock. Returns what it reads.
 */
export function rtcFollowKernel(root: MachineRoot, kernel: Kernel): RtcTime {
  return advanceRtc(root, kernelRealTime(kernel));
}

/**
 * The wall-clock time a booting kernel takes from the RTC
 * (read_persistent_clock64() in timekeeping_init()), in whole seconds: the
 * RTC caught up with the kernel that ran before, if its clock is known (a
 * warm restart; a cold one was followed at its last step), plus
 * BOOT_SECONDS for the restart itself, rounded up to the next second. The
 * RTC is moved on to it, within the running step.
 */
export function rtcBootTime(root: MachineRoot, previous: Kernel | null): bigint {
  const now = previous ? rtcFollowKernel(root, previous) : readRtc(root);
  const boot = now.sec + BOOT_SECONDS + (now.nsec > 0 ? 1n : 0n);
  advanceRtc(root, { sec: boot, nsec: 0 });
  return boot;
}
