/**
 * "Am I a crash recovery kernel, and of which design?": one question every
 * driver that collects device state asks (cxgb4 asks is_kdump_kernel()),
 * answered for each design the machine runs. Each design adds its test to
 * CRASH_RECOVERY_TESTS; the first that holds wins (a design whose kernel
 * also looks like another's goes before it: fadump sets elfcorehdr= too).
 */
import { CRASHDUMP_ADDR_NONE } from './constants.js';
import type { Kernel } from './kernel.js';
import { isKdumpKernel } from './vmcore/proc_vmcore.js';

export type CrashRecoveryDesign = 'kdump' | 'softboot' | 'fadump';

export interface CrashRecoveryTest {
  design: CrashRecoveryDesign;
  /** True when the running kernel was started to recover from a crash of this design. */
  is(kernel: Kernel): boolean;
}

/** kernel 2 of LKCD's soft boot: it found and reserved a saved dump at boot (crashdump=). */
export function isSoftbootRecoveryKernel(kernel: Kernel): boolean {
  const addr = kernel.readU64('crashdump_addr');
  return addr !== 0n && addr !== CRASHDUMP_ADDR_NONE;
}

/** In order: the fadump boot's test goes first when it is added (its kernel has elfcorehdr= as well). */
export const CRASH_RECOVERY_TESTS: readonly CrashRecoveryTest[] = [
  { design: 'kdump', is: isKdumpKernel },
  { design: 'softboot', is: isSoftbootRecoveryKernel },
];

/** The design the running kernel recovers from a crash for, or null for an ordinary boot. */
export function crashRecoveryDesign(kernel: Kernel, tests: readonly CrashRecoveryTest[] = CRASH_RECOVERY_TESTS): CrashRecoveryDesign | null {
  return tests.find((t) => t.is(kernel))?.design ?? null;
}
