import { Kernel } from './kernel.js';
import type { MemMap } from './mm/mem_map.js';
import { SlabCache, type PageSource } from './mm/slab.js';
import { hlist_head, hlist_node } from './structs/hlist.js';
import { pid, pid_namespace, PIDNS_ADDING, PIDTYPE_MAX, PIDTYPE_PID, type Pid } from './structs/pid.js';
import { task_struct } from './structs/task_struct.js';
import { IDR_RT_MARKER, xa_node } from './structs/xarray.js';
import { XarrayWriter } from './xarray.js';

const PID_LINKS_OFFSET = BigInt(task_struct.offsetOf.pid_links);
const TASKS_OFFSET_IN_PID = BigInt(pid.offsetOf.tasks);

/**
 * Pid numbers as kernel/pid.c keeps them: each task but the idle task gets
 * a struct pid from the pid slab, found by number through init_pid_ns.idr
 * and linked to its task through pid->tasks[PIDTYPE_PID] and
 * task->pid_links[PIDTYPE_PID] (attach_pid). The idle task uses the static
 * init_struct_pid, which is not in the idr, as in the kernel.
 */
export class PidAllocator {
  private readonly pidCache: SlabCache;
  private readonly nodeCache: SlabCache;

  constructor(readonly kernel: Kernel, memmap: MemMap, pages: PageSource) {
    this.pidCache = new SlabCache(kernel, memmap, pages, 'pid_cachep');
    this.nodeCache = new SlabCache(kernel, memmap, pages, 'radix_tree_node_cachep');
  }

  private idr(): XarrayWriter {
    const ns = this.kernel.sym('init_pid_ns').address;
    return new XarrayWriter(this.kernel, ns + BigInt(pid_namespace.offsetOf.idr), () => this.nodeCache.alloc());
  }

  /** pid_idr_init() and the static init_pid_ns / init_struct_pid initialisers. */
  init(): void {
    this.pidCache.create('pid', pid.size);
    this.nodeCache.create('radix_tree_node', xa_node.size);
    const ns = this.kernel.sym('init_pid_ns').address;
    this.kernel.writeStruct(pid_namespace, 'init_pid_ns', {
      ...pid_namespace.zero(),
      kref: 2,
      idr: { idr_rt: { xa_lock: 0, xa_flags: IDR_RT_MARKER, xa_head: 0n }, idr_base: 0, idr_next: 0 },
      pid_allocated: PIDNS_ADDING,
      child_reaper: this.kernel.sym('init_task').address,
      pid_cachep: this.kernel.sym('pid_cachep').address,
    });
    this.kernel.writeStruct(pid, 'init_struct_pid', this.blankPid(this.kernel.sym('init_struct_pid').address, 0, ns));
  }

  private blankPid(self: bigint, nr: number, ns: bigint): Pid {
    const waitHead = self + BigInt(pid.offsetOf.wait_pidfd) + 8n;
    return {
      ...pid.zero(), count: 1, level: 0,
      tasks: Array.from({ length: PIDTYPE_MAX }, () => ({ first: 0n })),
      wait_pidfd: { lock: 0, _pad: 0, head: { next: waitHead, prev: waitHead } },
      numbers: [{ nr, _pad: 0, ns }],
    };
  }

  /** hlist_add_head_rcu(&task->pid_links[PIDTYPE_PID], &pid->tasks[PIDTYPE_PID]), the pid's list being empty. */
  private link(task: bigint, pidAddr: bigint): void {
    const head = pidAddr + TASKS_OFFSET_IN_PID + BigInt(PIDTYPE_PID * hlist_head.size);
    const node = task + PID_LINKS_OFFSET + BigInt(PIDTYPE_PID * hlist_node.size);
    const ram = this.kernel.ram;
    const first = ram.readU64(this.kernel.pa(head));
    ram.writeU64(this.kernel.pa(node), first);
    ram.writeU64(this.kernel.pa(node) + 8n, head);
    if (first !== 0n) ram.writeU64(this.kernel.pa(first) + 8n, node);
    ram.writeU64(this.kernel.pa(head), node);
    ram.writeU64(this.kernel.pa(task) + BigInt(task_struct.offsetOf.thread_pid), pidAddr);
  }

  /** init_task gets init_struct_pid (pid 0, not in the idr). */
  attachIdle(task: bigint): void {
    this.link(task, this.kernel.sym('init_struct_pid').address);
  }

  /** alloc_pid + attach_pid: a struct pid numbered `nr` in init_pid_ns, linked to `task`. */
  attach(task: bigint, nr: number): bigint {
    const ns = this.kernel.sym('init_pid_ns').address;
    const addr = this.pidCache.alloc();
    this.kernel.ram.write(this.kernel.pa(addr), pid.toBytes(this.blankPid(addr, nr, ns)));
    this.idr().store(nr, addr);
    const nsv = this.kernel.readStruct(pid_namespace, 'init_pid_ns');
    this.kernel.writeStruct(pid_namespace, 'init_pid_ns', {
      ...nsv, pid_allocated: nsv.pid_allocated + 1, idr: { ...nsv.idr, idr_next: nr + 1 },
    });
    this.link(task, addr);
    return addr;
  }
}
