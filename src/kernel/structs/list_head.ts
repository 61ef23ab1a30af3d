import { defineStruct, ptr, type ValueOf } from '../../codec/index.js';

/** struct list_head (include/linux/types.h): next, prev, as kernel virtual addresses. */
export const list_head = defineStruct('list_head', {
  next: ptr('struct list_head'),
  prev: ptr('struct list_head'),
});
export type ListHead = ValueOf<typeof list_head>;
