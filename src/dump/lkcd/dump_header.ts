import { cstring, defineStruct, u32, u64, type ValueOf } from '../../codec/index.js';
import { DUMP_PANIC_LEN } from './constants.js';

const UTS = 65;

/** struct timeval as LKCD v8+ stores it: two u64, whatever the word size. */
export const dump_timeval = defineStruct('dump_timeval', {
  tv_sec: u64,
  tv_usec: u64,
});

/**
 * dump_header_t, LKCD format v9 (include/linux/dump.h; crash lkcd_dump_v8.h
 * plus dh_dump_buffer_size): packed, little-endian, 742 bytes.
 */
export const dump_header = defineStruct('dump_header', {
  dh_magic_number: u64,
  dh_version: u32,
  dh_header_size: u32,
  dh_dump_level: u32,
  dh_page_size: u32,
  dh_memory_size: u64,
  dh_memory_start: u64,
  dh_memory_end: u64,
  dh_num_pages: u32,
  dh_panic_string: cstring(DUMP_PANIC_LEN),
  dh_time: dump_timeval,
  dh_utsname_sysname: cstring(UTS),
  dh_utsname_nodename: cstring(UTS),
  dh_utsname_release: cstring(UTS),
  dh_utsname_version: cstring(UTS),
  dh_utsname_machine: cstring(UTS),
  dh_utsname_domainname: cstring(UTS),
  dh_current_task: u64,
  dh_dump_compress: u32,
  dh_dump_flags: u32,
  dh_dump_device: u32,
  dh_dump_buffer_size: u64,
});
export type DumpHeader = ValueOf<typeof dump_header>;
