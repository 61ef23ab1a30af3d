import { array, defineStruct, u32, u64, type ValueOf } from '../../codec/index.js';

/** struct boot_e820_entry / e820_entry (arch/x86/include/uapi/asm/bootparam.h), packed: 20 bytes. */
export const e820_entry = defineStruct('e820_entry', {
  addr: u64,
  size: u64,
  type: u32,
});
export type E820Entry = ValueOf<typeof e820_entry>;

/**
 * Entries the simulated kernel's table holds. The kernel's E820_MAX_ENTRIES
 * is 128 + 3 * MAX_NUMNODES; the simulated firmware and kexec hand over a
 * handful, so the table is kept small.
 */
export const E820_MAX_ENTRIES_SIM = 32;

/** struct e820_table (arch/x86/include/asm/e820/types.h): the kernel's copy of the memory map. */
export const e820_table = defineStruct('e820_table', {
  nr_entries: u32,
  entries: array(e820_entry, E820_MAX_ENTRIES_SIM),
});
export type E820Table = ValueOf<typeof e820_table>;

/** E820_MAX_ENTRIES_ZEROPAGE: entries the zero page's e820_table holds. */
export const E820_MAX_ENTRIES_ZEROPAGE = 128;

