import { cstring, defineStruct, i32, i64, u32, u64, type ValueOf } from '../../codec/index.js';
import { TASK_COMM_LEN } from '../constants.js';
import { list_head } from './list_head.js';
import { pt_regs } from './pt_regs.js';

/**
 * The simulated kernel's task_struct. Real ones are ~9 KiB and change with
 * every config; this keeps the members crash-dump tools read (state, tasks,
 * pid, comm, mm, stack, parent) under their kernel names, with our own
 * offsets, which Kerntypes records.
 */
export const task_struct = defineStruct('task_struct', {
  state: i64,
  stack: u64,
  flags: u32,
  cpu: u32,
  tasks: list_head,
  mm: u64,
  pid: i32,
  tgid: i32,
  real_parent: u64,
  comm: cstring(TASK_COMM_LEN),
  start_time: u64,
  /** Pages of user memory the task owns (our stand-in for mm->rss_stat). */
  rss_pages: u64,
  /** Saved registers of the task when it last left the CPU (thread.sp and friends). */
  thread_regs: pt_regs,
});
export type TaskStruct = ValueOf<typeof task_struct>;
