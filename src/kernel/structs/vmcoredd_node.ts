import { ctyped, defineStruct, ptr, u32, type ValueOf } from '../../codec/index.js';
import { list_head } from './list_head.js';

/**
 * struct vmcoredd_node (include/linux/crash_dump.h): one device dump on
 * vmcoredd_list, its buffer (vmalloc'd: a vmcoredd_header, then the
 * driver's data, zero to a whole number of pages) and that buffer's size.
 */
export const vmcoredd_node = defineStruct('vmcoredd_node', {
  list: list_head,
  buf: ptr('void'),
  size: ctyped(u32, 'unsigned int'),
  _pad: u32,
});
export type VmcoreddNode = ValueOf<typeof vmcoredd_node>;
