import { cstring, defineStruct, u32, u64, type ValueOf } from '../../codec/index.js';
import { DUMP_PANIC_LEN } from './constants.js';

const UTS = 65;

/** struct timeval as LKCD v8+ stores it: two u64, whatever the word size. */
export const dump_timeval = defineStruct('dump_timeval', {
  tv_sec: u64,
  tv_usec: u64,
});

/** The fields of dump_header_t that v8 and v9 share, in order. */
const DUMP_HEADER_V8_FIELDS = {
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
};

/**
 * dump_header_t, LKCD format v8 (K-V8 include/linux/dump.h; crash
 * lkcd_dump_v8.h): 734 bytes, packed, little-endian.
 */
export const dump_header_v8 = defineStruct('dump_header', DUMP_HEADER_V8_FIELDS);
export type DumpHeaderV8 = ValueOf<typeof dump_header_v8>;

/**
 * dump_header_t, LKCD format v9 (K-V9 include/linux/dump.h): v8 plus
 * dh_dump_buffer_size, the offset of the first page record. 742 bytes.
 */
export const dump_header = defineStruct('dump_header', {
  ...DUMP_HEADER_V8_FIELDS,
  dh_dump_buffer_size: u64,
});
export type DumpHeader = ValueOf<typeof dump_header>;
