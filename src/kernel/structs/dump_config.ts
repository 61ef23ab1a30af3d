import { defineStruct, u32, u64, type ValueOf } from '../../codec/index.js';

/**
 * The running dump driver's settings (struct dump_config in LKCD's
 * include/linux/dump.h: level, flags, dump_device, dump_addr), plus the
 * state the simulated driver keeps between commands.
 */
export const dump_config = defineStruct('dump_config', {
  level: u32,
  flags: u32,
  compress: u32,
  active: u32,
  dump_device: u64,
  /** Kernel virtual address of the dump config block (/proc/sys/kernel/dump/addr). */
  dump_addr: u64,
  panic_timeout: u32,
  _pad: u32,
  reserved: u64,
});
export type DumpConfig = ValueOf<typeof dump_config>;
