import { array, ctyped, defineStruct, i32, ptr, u32, type ValueOf } from '../../codec/index.js';
import { hlist_head } from './hlist.js';
import { list_head } from './list_head.js';
import { idr } from './xarray.js';

/** enum pid_type (include/linux/pid.h, v4.19+). */
export const PIDTYPE_PID = 0;
export const PIDTYPE_TGID = 1;
export const PIDTYPE_PGID = 2;
export const PIDTYPE_SID = 3;
export const PIDTYPE_MAX = 4;

/** PIDNS_ADDING (include/linux/pid_namespace.h): set in pid_allocated while the namespace takes new pids. */
export const PIDNS_ADDING = 1 << 31;

/** struct callback_head, alias rcu_head (include/linux/types.h): next and the callback. */
export const callback_head = defineStruct('callback_head', {
  next: ptr('struct callback_head'),
  func: ptr('void'),
});

/** struct wait_queue_head (include/linux/wait.h) without lock debugging: a spinlock and a list. */
export const wait_queue_head = defineStruct('wait_queue_head', {
  lock: ctyped(u32, 'spinlock_t'),
  _pad: u32,
  head: list_head,
});

/** struct upid (include/linux/pid.h, v4.15+): the pid number as one namespace sees it. */
export const upid = defineStruct('upid', {
  nr: ctyped(i32, 'int'),
  _pad: u32,
  ns: ptr('struct pid_namespace'),
});
export type Upid = ValueOf<typeof upid>;

/**
 * struct pid (include/linux/pid.h, v5.3..v5.6): the tasks using the pid,
 * one list per pid type, and its number in each namespace level (one level).
 */
export const pid = defineStruct('pid', {
  count: ctyped(u32, 'refcount_t'),
  level: ctyped(u32, 'unsigned int'),
  tasks: array(hlist_head, PIDTYPE_MAX),
  wait_pidfd: wait_queue_head,
  rcu: callback_head,
  numbers: array(upid, 1),
});
export type Pid = ValueOf<typeof pid>;

/**
 * struct pid_namespace (include/linux/pid_namespace.h, v5.4), its leading
 * members to `parent` at their 5.4 offsets: the idr maps pid numbers to
 * struct pid, which drgn's for_each_task walks.
 */
export const pid_namespace = defineStruct('pid_namespace', {
  kref: ctyped(i32, 'struct kref'),
  _pad: u32,
  idr,
  rcu: callback_head,
  pid_allocated: ctyped(u32, 'unsigned int'),
  _pad2: u32,
  child_reaper: ptr('struct task_struct'),
  pid_cachep: ptr('struct kmem_cache'),
  level: ctyped(u32, 'unsigned int'),
  _pad3: u32,
  parent: ptr('struct pid_namespace'),
});
export type PidNamespace = ValueOf<typeof pid_namespace>;
