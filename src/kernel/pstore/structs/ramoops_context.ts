import { defineStruct, i32, u32, u64, type ValueOf } from '../../../codec/index.js';

/**
 * The running ramoops backend (the kernel variable oops_cxt, struct
 * ramoops_context in fs/pstore/ram.c): the region, the zone sizes after
 * ramoops_probe() rounded them, and the dmesg write counter. The zones
 * themselves (struct persistent_ram_zone) are recomputed from these by
 * ramoopsZones(), a pure function, instead of being kept as pointers.
 * `devcd_size` and `probed` are ours.
 */
export const ramoops_context = defineStruct('ramoops_context', {
  phys_addr: u64,
  size: u64,
  record_size: u64,
  console_size: u64,
  ftrace_size: u64,
  pmsg_size: u64,
  /** Ours: the devcoredump zone, placed right after the ramoops region (0: frontend off). */
  devcd_size: u64,
  flags: u32,
  /** ecc_info.ecc_size: parity bytes per block (0: no ECC). */
  ecc_size: u32,
  memtype: u32,
  max_reason: i32,
  max_dump_cnt: u32,
  dump_write_cnt: u32,
  max_ftrace_cnt: u32,
  /** Ours: 1 once ramoops_probe() succeeded and the backend is registered with pstore. */
  probed: u32,
});
export type RamoopsContext = ValueOf<typeof ramoops_context>;
