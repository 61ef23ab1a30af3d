import { ctyped, defineStruct, i32, ptr, u64, type ValueOf } from '../../codec/index.js';
import { list_head } from './list_head.js';

/**
 * struct page (include/linux/mm_types.h, v5.4, x86_64, CONFIG_MEMCG): 64
 * bytes. The union at offset 8 is shown in its page-cache/anon form; slab
 * pages keep their kmem_cache pointer where `mapping` is, as the kernel's
 * slab_cache member does.
 */
export const page = defineStruct('page', {
  flags: ctyped(u64, 'unsigned long'),
  lru: list_head,
  mapping: ptr('struct address_space'),
  index: ctyped(u64, 'pgoff_t'),
  private: ctyped(u64, 'unsigned long'),
  _mapcount: ctyped(i32, 'atomic_t'),
  _refcount: ctyped(i32, 'atomic_t'),
  mem_cgroup: ptr('struct mem_cgroup'),
});
export type Page = ValueOf<typeof page>;
