import { ctyped, defineStruct, u64, type ValueOf } from '../../codec/index.js';
import { list_head } from './list_head.js';

/**
 * struct free_area (include/linux/mmzone.h) with a single migrate type: the
 * simulated allocator has one zone and does not group pages by mobility.
 */
export const free_area = defineStruct('free_area', {
  free_list: list_head,
  nr_free: ctyped(u64, 'unsigned long'),
});
export type FreeArea = ValueOf<typeof free_area>;
