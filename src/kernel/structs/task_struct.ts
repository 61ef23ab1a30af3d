import { array, cstring, ctyped, defineStruct, i32, i64, ptr, u32, u64, type ValueOf } from '../../codec/index.js';
import { TASK_COMM_LEN } from '../constants.js';
import { hlist_node } from './hlist.js';
import { list_head } from './list_head.js';
import { PIDTYPE_MAX } from './pid.js';
import { pt_regs } from './pt_regs.js';

/**
 * The simulated kernel's task_struct. Real ones are ~9 KiB and change with
 * every config; this keeps the members crash-dump tools read (state, tasks,
 * pid, comm, mm, stack, parent, exit_state, the pid links) under their
 * kernel names, with our own offsets, which Kerntypes and the debug vmlinux
 * record.
 */
export const task_struct = defineStruct('task_struct', {
  state: ctyped(i64, 'long'),
  stack: ptr('void'),
  flags: ctyped(u32, 'unsigned int'),
  cpu: ctyped(u32, 'unsigned int'),
  tasks: list_head,
  mm: ptr('struct mm_struct'),
  pid: ctyped(i32, 'pid_t'),
  tgid: ctyped(i32, 'pid_t'),
  real_parent: ptr('struct task_struct'),
  comm: cstring(TASK_COMM_LEN),
  start_time: u64,
  /** Pages of user memory the task owns (our stand-in for mm->rss_stat). */
  rss_pages: ctyped(u64, 'unsigned long'),
  /** Saved registers of the task when it last left the CPU (thread.sp and friends). */
  thread_regs: pt_regs,
  /** EXIT_ZOMBIE / EXIT_DEAD once the task has exited; 0 while it lives. */
  exit_state: ctyped(i32, 'int'),
  _pad: u32,
  /** The task's struct pid (attach_pid with PIDTYPE_PID). */
  thread_pid: ptr('struct pid'),
  /** Links into pid->tasks[type]; only PIDTYPE_PID is linked (no thread groups, sessions). */
  pid_links: array(hlist_node, PIDTYPE_MAX),
});
export type TaskStruct = ValueOf<typeof task_struct>;
