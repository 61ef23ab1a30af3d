import { array, bytes, defineStruct, type ValueOf } from '../../codec/index.js';
import { MAX_ORDER } from '../constants.js';
import { free_area } from './free_area.js';

/**
 * contig_page_data, the one node of a FLATMEM kernel (struct pglist_data,
 * include/linux/mmzone.h), reduced to what the simulated allocator has: one
 * zone, whose free_area[MAX_ORDER] is inline, then 16 reserved bytes.
 */
export const pglist_data = defineStruct('pglist_data', {
  free_area: array(free_area, MAX_ORDER),
  _reserved: bytes(16),
});
export type PglistData = ValueOf<typeof pglist_data>;
