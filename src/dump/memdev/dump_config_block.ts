import { array, cstring, defineStruct, u16, u32, u64, type ValueOf } from '../../codec/index.js';
import { COMMAND_LINE_SIZE } from '../../kernel/constants.js';
import { DUMP_PANIC_LEN } from '../lkcd/constants.js';

/**
 * Version of our dump_config_block layout (the LKCD original held kernel
 * structs by value). 2: the kexec image and command line of the arming.
 */
export const DUMP_CONFIG_BLOCK_VERSION = 2;
/** Room for the kexec image's path, as the running kernel sees it (inside the machine root). */
export const KEXEC_IMAGE_PATH_MAX = 256;
/** Pages set aside at configuration so a dump can start before any page is freed (dump_memdev.c). */
export const DUMP_NR_BOOTSTRAP = 64;
/** Data-page PFNs per map page (PAGE_SIZE / sizeof(unsigned long)). */
export const DUMP_MAP_SZ = 512;
/** Map-page PFNs per indirect page: the last slot chains to the next indirect page. */
export const DUMP_IND_MAP_SZ = DUMP_MAP_SZ - 1;
export const MAX_DUMP_SEGMENTS = 24;

/** Block states. */
export const DUMP_STATE_ARMED = 1;      // configured, no dump in memory
export const DUMP_STATE_SAVED = 2;      // a dump is in memory, awaiting writeout
export const DUMP_STATE_WRITTEN = 3;    // written out to the dump device; frames released

/** Stage 2 writeout states (wo_state). */
export const WRITEOUT_NONE = 0;
export const WRITEOUT_RUNNING = 1;

/** Pass numbers, as dump_filters.c numbers its filter table. */
export const DUMP_PASS_KERN = 0;
export const DUMP_PASS_USER = 1;
export const DUMP_PASS_UNUSED = 2;
export const DUMP_PASS_NAMES = ['kern', 'user', 'unused'] as const;

/**
 * A contiguous run of page records of one pass in the memdev's logical
 * space (the filter table's start/end of LKCD, which may hold several runs
 * per pass here: pages saved after a deferral form a later run).
 */
export const dump_segment = defineStruct('dump_segment', {
  pass: u32,
  nr_pages: u32,
  start: u64,
  end: u64,
});
export type DumpSegment = ValueOf<typeof dump_segment>;

/**
 * struct dump_memdev (include/linux/dumpdev.h): the handle to pages saved
 * in memory. Offsets are bytes of the memdev's logical space.
 */
export const dump_memdev = defineStruct('dump_memdev', {
  indirect_map_root: u64,
  nr_indirect: u32,
  nr_maps_max: u32,
  nr_map_pages: u32,
  nr_free: u32,
  nr_data_pages: u64,
  last_offset: u64,
  last_used_offset: u64,
  last_bs_offset: u64,
});
export type DumpMemdev = ValueOf<typeof dump_memdev>;

/**
 * The dump config block (LKML-1's struct dump_config_block, our layout):
 * found by the next kernel at crashdump=<addr>; holds the settings, the
 * memdev handle, and what stage 1 saved. Protected by a CRC32.
 */
export const dump_config_block = defineStruct('dump_config_block', {
  magic: u64,
  version: u32,
  block_size: u32,
  checksum: u32,
  state: u32,
  ram_bytes: u64,
  level: u32,
  flags: u32,
  compress: u32,
  panic_timeout: u32,
  memdev: dump_memdev,
  dump_buf_pfn: u64,
  dump_buf_pages: u32,
  header_len: u32,
  dump_time_sec: u64,
  dump_time_usec: u64,
  live: u32,
  truncated: u32,
  dumped_passes: u32,
  dropped_passes: u32,
  nr_segments: u32,
  nr_missing_ranges: u32,
  segments: array(dump_segment, MAX_DUMP_SEGMENTS),
  end_offset: u64,
  pages_saved: u64,
  pages_missing: u64,
  missing_root: u64,
  pages_compressed: u64,
  bytes_stored: u64,
  boot_physical_start: u64,
  boot_region_end: u64,
  panic_string: cstring(DUMP_PANIC_LEN),
  /** Stage 2 writeout progress, so an interrupted writeout resumes where it stopped. */
  wo_state: u32,
  wo_segment: u32,
  wo_seg_offset: u64,
  wo_dev_offset: u64,
  wo_pages: u64,
  wo_device_size: u64,
  /** First page of the record table (our extension): one descriptor per saved record, in stream order. */
  record_table_root: u64,
  nr_records: u64,
  /** CRC32 of the dump and arch headers, and a second copy of them in two more frames. */
  header_crc32: u32,
  _pad2: u32,
  header_copy_pfn: array(u64, 2),
  /**
   * What `lkcd config` preloaded when it armed (kexec -l IMAGE
   * --command-line=CMDLINE, CMDLINE ending in crashdump=<this block>), so a
   * kernel that boots holding this dump reloads the same, and a second
   * crash before the writeout kexecs into a kernel that finds it again.
   */
  kexec_image: cstring(KEXEC_IMAGE_PATH_MAX),
  kexec_cmdline: cstring(COMMAND_LINE_SIZE),
});
export type DumpConfigBlock = ValueOf<typeof dump_config_block>;

/**
 * A page of the missing-ranges list: [start, end) pfn ranges not saved,
 * chained by pfn. Every range of a page has the page's reason (a
 * DUMP_RANGE_* code; 0 in lists written before reasons were kept, where
 * this word was padding).
 */
export const MISSING_RANGES_PER_PAGE = 255;
export const dump_missing_page = defineStruct('dump_missing_page', {
  next_pfn: u64,
  count: u32,
  reason: u32,
  ranges: array(defineStruct('pfn_range', { start: u64, end: u64 }), MISSING_RANGES_PER_PAGE),
});

/**
 * One entry of the record table: what the page record at that position of
 * the stream must be, and a check of its data. Stage 2 checks every record
 * against it, so a bit flipped in a dump frame between the panic and the
 * writeout is found and named, and a damaged header cannot throw the walk
 * off (the table gives the record's length). 8 bytes, so the table costs
 * one frame per 510 saved pages: pfn (u32 covers 16 TiB of RAM), dp_size
 * (at most a page), and the low 16 bits of the data's CRC32.
 */
export const dump_record_desc = defineStruct('dump_record_desc', {
  pfn: u32,
  dp_size: u16,
  crc16: u16,
});
export const RECORD_DESCS_PER_PAGE = 510;
/** A page of the record table, chained by pfn, its entries protected by their own CRC32. */
export const dump_record_table_page = defineStruct('dump_record_table_page', {
  next_pfn: u64,
  count: u32,
  entries_crc32: u32,
  entries: array(dump_record_desc, RECORD_DESCS_PER_PAGE),
});

/** The check a record-table entry keeps of a record's data. */
export function recordCheck(crc32: number): number {
  return crc32 & 0xffff;
}
