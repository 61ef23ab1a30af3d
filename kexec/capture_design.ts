/**
 * Which design's capture kernel is running: what kdumpctl save records as
 * the design of the dump it indexes. kdump's capture kernel is the one
 * booted with elfcorehdr= by crash_kexec; fadump's (when it lands) is a
 * normal boot that found the firmware's crash info, and is told apart here.
 */
import { UsageError } from '../src/codec/index.js';
import { isKdumpKernel, type Kernel } from '../src/kernel/index.js';

/** The designs whose capture kernel kdumpctl save runs in. */
export type CaptureDesign = 'kdump' | 'fadump';

export function captureDesign(kernel: Kernel): CaptureDesign {
  if (isKdumpKernel(kernel)) return 'kdump';
  throw new UsageError('not running in a capture kernel (no elfcorehdr=): no design saved this dump');
}
