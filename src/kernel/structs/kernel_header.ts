import { cstring, defineStruct, u32, u64, type ValueOf } from '../../codec/index.js';

/**
 * Header at the start of the simulated kernel image (our own, in the role
 * of the bzImage setup header): how the loaded kernel finds its symbol
 * table in RAM. Everything after boot is found through it.
 */
export const LKCD_KERNEL_MAGIC = 0x4c4e524b44434b4cn; // "LKCDKRNL" little-endian
export const LKCD_KERNEL_HEADER_VERSION = 1;

export const lkcd_kernel_header = defineStruct('lkcd_kernel_header', {
  magic: u64,
  version: u32,
  header_size: u32,
  physical_start: u64,
  text_vaddr: u64,
  image_size: u64,
  kallsyms_vaddr: u64,
  kallsyms_count: u32,
  kallsyms_entry_size: u32,
  release: cstring(65),
  _pad: cstring(7),
});
export type LkcdKernelHeader = ValueOf<typeof lkcd_kernel_header>;

/** One kallsyms entry: address, size and type letter of a symbol, then its name. */
export const kallsyms_entry = defineStruct('kallsyms_entry', {
  address: u64,
  size: u64,
  type: cstring(8),
  name: cstring(40),
});
export type KallsymsEntry = ValueOf<typeof kallsyms_entry>;
