/**
 * Constants of firmware-assisted dump (arch/powerpc/include/asm/fadump.h,
 * arch/powerpc/kernel/fadump.c of the 2011 series, as merged in 3.4).
 */
import { fadumpStrToU64 } from '../../machine/index.js';

/** FADUMP_CRASH_INFO_MAGIC: STR_TO_HEX("FADMPINF") = 0x4641444d50494e46. */
export const FADUMP_CRASH_INFO_MAGIC = fadumpStrToU64('FADMPINF');

/** CPU_UNKNOWN: crashing_cpu until crash_fadump() sets it. */
export const CPU_UNKNOWN = 0xffffffff;

/** RMA_START: boot memory starts at physical 0. */
export const RMA_START = 0n;

/**
 * MIN_BOOT_MEM of 2011: 256 MiB (the real-mode area was smaller), the
 * least boot memory fadump_calculate_reserve_size() returns. Scaled for
 * small simulated machines: see fadumpMinBootMem().
 */
export const MIN_BOOT_MEM = 256n << 20n;

/** The 5% rule rounds down to multiples of 256 MiB (size & ~0x0FFFFFFFUL). */
export const BOOT_MEM_ROUND = 256n << 20n;
