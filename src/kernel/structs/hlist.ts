import { defineStruct, ptr, type ValueOf } from '../../codec/index.js';

/** struct hlist_node (include/linux/types.h): next, and the address of the pointer that points here. */
export const hlist_node = defineStruct('hlist_node', {
  next: ptr('struct hlist_node'),
  pprev: ptr('struct hlist_node *'),
});
export type HlistNode = ValueOf<typeof hlist_node>;

/** struct hlist_head (include/linux/types.h): the first node, or NULL. */
export const hlist_head = defineStruct('hlist_head', {
  first: ptr('struct hlist_node'),
});
export type HlistHead = ValueOf<typeof hlist_head>;
