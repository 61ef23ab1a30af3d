import { array, ctyped, defineStruct, ptr, u32, u64, u8, type ValueOf } from '../../codec/index.js';
import { list_head } from './list_head.js';

/** XA_CHUNK_SHIFT with CONFIG_BASE_SMALL=0 (include/linux/xarray.h): 64 slots per node. */
export const XA_CHUNK_SHIFT = 6;
export const XA_CHUNK_SIZE = 1 << XA_CHUNK_SHIFT;
export const XA_CHUNK_MASK = XA_CHUNK_SIZE - 1;
/** XA_MAX_MARKS; XA_MARK_LONGS is 1 with 64 slots, so marks[3][1] is three longs. */
export const XA_MAX_MARKS = 3;

/**
 * struct xarray (include/linux/xarray.h, v4.20+): the lock, the flags, and
 * the head, which is NULL, the entry at index 0, or a node pointer with
 * bit 1 set (xa_mk_node). A radix_tree_root is the same structure.
 */
export const xarray = defineStruct('xarray', {
  xa_lock: ctyped(u32, 'spinlock_t'),
  xa_flags: ctyped(u32, 'gfp_t'),
  xa_head: ptr('void'),
});
export type Xarray = ValueOf<typeof xarray>;

/** struct xa_node (include/linux/xarray.h): 576 bytes, the radix_tree_node slab object. */
export const xa_node = defineStruct('xa_node', {
  shift: ctyped(u8, 'unsigned char'),
  offset: ctyped(u8, 'unsigned char'),
  count: ctyped(u8, 'unsigned char'),
  nr_values: ctyped(u8, 'unsigned char'),
  _pad: u32,
  parent: ptr('struct xa_node'),
  array: ptr('struct xarray'),
  private_list: list_head,
  slots: array(ptr('void'), XA_CHUNK_SIZE),
  marks: array(ctyped(u64, 'unsigned long'), XA_MAX_MARKS),
});
export type XaNode = ValueOf<typeof xa_node>;

/** struct idr (include/linux/idr.h, v4.20+): an xarray keyed by ID. */
export const idr = defineStruct('idr', {
  idr_rt: xarray,
  idr_base: ctyped(u32, 'unsigned int'),
  idr_next: ctyped(u32, 'unsigned int'),
});
export type Idr = ValueOf<typeof idr>;

/**
 * IDR_RT_MARKER (include/linux/idr.h): ROOT_IS_IDR (4) and the IDR_FREE tag
 * bit (1 << ROOT_TAG_SHIFT, __GFP_BITS_SHIFT = 23 without lockdep) that
 * IDR_INIT puts in xa_flags.
 */
export const IDR_RT_MARKER = 0x4 | (1 << 23);
