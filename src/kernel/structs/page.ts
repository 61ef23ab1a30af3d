import { defineStruct, i32, u64, type ValueOf } from '../../codec/index.js';
import { list_head } from './list_head.js';

/**
 * struct page (include/linux/mm_types.h, v5.4, x86_64, CONFIG_MEMCG): 64
 * bytes. The union at offset 8 is shown in its page-cache/anon form; slab
 * pages keep their kmem_cache pointer where `mapping` is, as the kernel's
 * slab_cache member does.
 */
export const page = defineStruct('page', {
  flags: u64,
  lru: list_head,
  mapping: u64,
  index: u64,
  private: u64,
  _mapcount: i32,
  _refcount: i32,
  mem_cgroup: u64,
});
export type Page = ValueOf<typeof page>;
