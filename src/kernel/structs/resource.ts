import { defineStruct, u64, type ValueOf } from '../../codec/index.js';

/**
 * struct resource (include/linux/ioport.h): a range in the iomem tree.
 * crashk_res is one, named "Crash kernel"; end is inclusive, and an unset
 * resource has start == end == 0.
 */
export const resource = defineStruct('resource', {
  start: u64,
  end: u64,
  name: u64,
  flags: u64,
  desc: u64,
  parent: u64,
  sibling: u64,
  child: u64,
});
export type Resource = ValueOf<typeof resource>;

/** IORESOURCE_MEM | IORESOURCE_BUSY | IORESOURCE_SYSTEM_RAM (include/linux/ioport.h), crashk_res's flags. */
export const IORESOURCE_MEM = 0x00000200n;
export const IORESOURCE_BUSY = 0x80000000n;
export const IORESOURCE_SYSRAM = 0x01000000n;
/** IORES_DESC_CRASH_KERNEL (include/linux/ioport.h). */
export const IORES_DESC_CRASH_KERNEL = 1n;
