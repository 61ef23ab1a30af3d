import { cstring, defineStruct, u32, u64, type ValueOf } from '../../codec/index.js';

/**
 * A minimal slab cache: objects of one size carved from whole pages. The
 * current slab page and the next free slot are all the state it needs.
 */
export const kmem_cache = defineStruct('kmem_cache', {
  name: cstring(32),
  object_size: u32,
  objects_per_slab: u32,
  cur_slab_pfn: u64,
  cur_index: u32,
  nr_slabs: u32,
});
export type KmemCache = ValueOf<typeof kmem_cache>;
