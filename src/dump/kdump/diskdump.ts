/**
 * makedumpfile's kdump-compressed ("diskdump") format, as diskdump_mod.h
 * of makedumpfile 1.7.2 declares it for a 64-bit target:
 *
 *   block 0                      disk_dump_header (signature "KDUMP   ")
 *   block 1..sub_hdr_size        kdump_sub_header, then the ELF notes of the
 *                                vmcore (NT_PRSTATUS per CPU, VMCOREINFO)
 *   bitmap_blocks blocks         1st bitmap (pages in memory), 2nd bitmap
 *                                (pages dumped), one bit per PFN, LSB first
 *   page_desc[]                  one per set bit of the 2nd bitmap, in PFN order
 *   page data                    the shared zero page first, then each page,
 *                                raw or compressed (zlib, lzo, snappy, zstd)
 *   eraseinfo                    optional, at offset_eraseinfo
 */
import { bytes, defineStruct, i32, i64, u32, u64, type ValueOf } from '../../codec/index.js';
import { new_utsname } from '../../kernel/structs/new_utsname.js';

export const KDUMP_SIGNATURE = 'KDUMP   ';
export const DISK_DUMP_SIGNATURE = 'DISKDUMP';
/** SIG_LEN: the signature's bytes. */
export const SIG_LEN = 8;
/** DISKDUMP_HEADER_BLOCKS: the common header takes one block. */
export const DISKDUMP_HEADER_BLOCKS = 1;
/** The header_version makedumpfile 1.6+ writes; versions 1 to 6 are read. */
export const KDUMP_HEADER_VERSION_MAX = 6;
/** makedumpfile -F (flattened) output begins with this signature instead. */
export const MAKEDUMPFILE_SIGNATURE = 'makedumpfile';

/** struct disk_dump_header (64-bit: struct timeval is 16 bytes, 8-aligned). */
export const disk_dump_header = defineStruct('disk_dump_header', {
  signature: bytes(SIG_LEN),
  header_version: i32,
  utsname: new_utsname,
  _pad: bytes(6),
  tv_sec: i64,
  tv_usec: i64,
  status: u32,
  block_size: i32,
  sub_hdr_size: i32,
  bitmap_blocks: u32,
  max_mapnr: u32,
  total_ram_blocks: u32,
  device_blocks: u32,
  written_blocks: u32,
  current_cpu: u32,
  nr_cpus: i32,
});
export type DiskDumpHeader = ValueOf<typeof disk_dump_header>;

/** struct kdump_sub_header (64-bit). */
export const kdump_sub_header = defineStruct('kdump_sub_header', {
  phys_base: u64,
  dump_level: i32,            // header_version 1 and later
  split: i32,                 // 2 and later
  start_pfn: u64,             // 2 and later (32-bit values, obsolete)
  end_pfn: u64,
  offset_vmcoreinfo: i64,     // 3 and later
  size_vmcoreinfo: u64,
  offset_note: i64,           // 4 and later
  size_note: u64,
  offset_eraseinfo: i64,      // 5 and later
  size_eraseinfo: u64,
  start_pfn_64: u64,          // 6 and later
  end_pfn_64: u64,
  max_mapnr_64: u64,
});
export type KdumpSubHeader = ValueOf<typeof kdump_sub_header>;

/** struct page_desc: where a dumped page's data is and how it is stored. */
export const page_desc = defineStruct('page_desc', {
  offset: i64,
  size: u32,
  flags: u32,
  page_flags: u64,
});
export type PageDesc = ValueOf<typeof page_desc>;

/** Page and status flags (diskdump_mod.h). */
export const DUMP_DH_COMPRESSED_ZLIB = 0x1;
export const DUMP_DH_COMPRESSED_LZO = 0x2;
export const DUMP_DH_COMPRESSED_SNAPPY = 0x4;
export const DUMP_DH_COMPRESSED_INCOMPLETE = 0x8;
export const DUMP_DH_EXCLUDED_VMEMMAP = 0x10;
export const DUMP_DH_COMPRESSED_ZSTD = 0x20;
/** Any compression bit (libkdumpfile calls this DUMP_DH_COMPRESSED; renamed here, LKCD has a flag of that name). */
export const KDUMP_DH_COMPRESSED_MASK = DUMP_DH_COMPRESSED_ZLIB | DUMP_DH_COMPRESSED_LZO | DUMP_DH_COMPRESSED_SNAPPY | DUMP_DH_COMPRESSED_ZSTD;
