import { defineStruct, u64, type ValueOf } from '../../codec/index.js';

/** struct list_head (include/linux/types.h): next, prev, as kernel virtual addresses. */
export const list_head = defineStruct('list_head', {
  next: u64,
  prev: u64,
});
export type ListHead = ValueOf<typeof list_head>;
