import { defineStruct, i64, u32, u64, type ValueOf } from '../../../codec/index.js';

/**
 * The pstore core of the running kernel (the kernel variable pstore_state):
 * what fs/pstore/platform.c keeps in statics (psinfo, oopscount, the
 * compression buffer size, the console) and where pstorefs keeps the
 * records it read at mount. Ours in shape, upstream in meaning.
 */
export const pstore_state = defineStruct('pstore_state', {
  /** PSTORE_STATE_* bits. */
  flags: u32,
  /** 0 none, 1 deflate (the pstore.compress parameter). */
  compress: u32,
  /** platform.c's oopscount: the N of "Panic#N", counted from 1 in each boot. */
  oopscount: u32,
  /** psinfo->bufsize: the dmesg zone's buffer size (after ECC). */
  bufsize: u32,
  /** big_oops_buf_sz: how much log text one dump collects before compressing it. */
  big_oops_buf_sz: u32,
  /** console_loglevel: lines at this level or above stay off the console. */
  console_loglevel: u32,
  /** printk.always_kmsg_dump. */
  always_kmsg_dump: u32,
  /** Entries in the pstorefs file table. */
  nr_files: u32,
  /** First frame and order of the pstorefs file table (kernel memory from the buddy allocator). */
  files_pfn: u64,
  files_order: u32,
  _pad: u32,
  /** Wall-clock time pstorefs was mounted: the mtime of records that carry none. */
  mount_time: i64,
});
export type PstoreState = ValueOf<typeof pstore_state>;

/** pstore_register() done: a backend is there. */
export const PSTORE_STATE_REGISTERED = 0x1;
/** The pstore console is registered: printk output goes to the console zone. */
export const PSTORE_STATE_CONSOLE = 0x2;
/** The kmsg dumper is registered (the backend has dmesg zones). */
export const PSTORE_STATE_DMESG = 0x4;

/**
 * One file of pstorefs (what struct pstore_private and its pstore_record
 * hold for a file of fs/pstore/inode.c): the record's type, id and time,
 * and its contents, kept in kernel memory as a file's data is.
 */
export const pstore_file = defineStruct('pstore_file', {
  type: u32,
  /** PSTORE_FILE_* bits. */
  flags: u32,
  id: u64,
  time_sec: i64,
  time_nsec: u32,
  /** Bytes of the file: the record, then the ECC notice when ECC is on. */
  size: u32,
  data_pfn: u64,
  data_order: u32,
  /** Bytes of the ECC notice at the end of the file (record->ecc_notice_size). */
  ecc_notice_size: u32,
});
export type PstoreFile = ValueOf<typeof pstore_file>;

/** The record stayed compressed: the file name gets ".enc.z". */
export const PSTORE_FILE_COMPRESSED = 0x1;
/** The file was unlinked (its record erased); the entry stays as a tombstone. */
export const PSTORE_FILE_UNLINKED = 0x2;
