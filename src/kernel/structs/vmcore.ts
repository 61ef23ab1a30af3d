import { defineStruct, u64, type ValueOf } from '../../codec/index.js';
import { list_head } from './list_head.js';

/**
 * struct vmcore (include/linux/kcore.h): one chunk of old memory in
 * /proc/vmcore, [paddr, paddr + size) at file offset `offset`; linked
 * into vmcore_list.
 */
export const vmcore = defineStruct('vmcore', {
  list: list_head,
  paddr: u64,
  size: u64,
  offset: u64,
});
export type Vmcore = ValueOf<typeof vmcore>;
