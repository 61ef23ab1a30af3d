/**
 * Which crash-dump design booted the running kernel to capture a dump:
 * fadump when the firmware restarted it with a dump active (its
 * /proc/vmcore comes from the firmware's copy), kdump when kexec -p booted
 * it with elfcorehdr=, null for a kernel that is neither.
 */
import type { Kernel } from './kernel.js';
import { fadumpStatus } from './fadump/state.js';
import { isKdumpKernel } from './vmcore/proc_vmcore.js';

export type CaptureDesign = 'kdump' | 'fadump';

export function captureDesign(kernel: Kernel): CaptureDesign | null {
  if (fadumpStatus(kernel)?.dumpActive) return 'fadump';
  return isKdumpKernel(kernel) ? 'kdump' : null;
}
