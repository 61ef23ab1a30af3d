import { defineStruct, u32, u64, type ValueOf } from '../../codec/index.js';

/** Header in front of every page in an LKCD dump (struct __dump_page / dump_page_t): 16 bytes, packed. */
export const dump_page = defineStruct('dump_page', {
  dp_address: u64, // physical byte address of the page
  dp_size: u32,    // bytes of page data that follow this header
  dp_flags: u32,   // DUMP_DH_* bits
});
export type DumpPage = ValueOf<typeof dump_page>;
