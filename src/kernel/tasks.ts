import { CorruptDumpError, viewOf } from '../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N, type MemoryReader } from '../machine/index.js';
import { THREAD_SIZE_ORDER, PF_KTHREAD, TASK_RUNNING } from './constants.js';
import { Kernel } from './kernel.js';
import type { MemMap } from './mm/mem_map.js';
import { SlabCache, type PageSource } from './mm/slab.js';
import { PidAllocator } from './pids.js';
import { task_struct, type TaskStruct } from './structs/task_struct.js';
import { pt_regs, type PtRegs } from './structs/pt_regs.js';
import { blankPage } from './mm/buddy.js';

export type { PageSource } from './mm/slab.js';

export interface TaskSpec {
  comm: string;
  state: bigint;
  kthread: boolean;
  /** Set for user tasks: pages of anonymous memory owned. */
  rssPages?: bigint;
  /** Stand-in for mm: nonzero for user tasks. */
  mm?: bigint;
  /** Function the task sleeps in (its saved ip). */
  ip: bigint;
}

export interface TaskInfo extends TaskStruct {
  address: bigint;
}

const TASKS_OFFSET = BigInt(task_struct.offsetOf.tasks);

function zeroRegs(): PtRegs {
  return pt_regs.zero();
}

/**
 * Task creation in RAM: task_structs come from the task_struct slab cache,
 * each task gets a THREAD_SIZE kernel stack and a struct pid, and joins
 * init_task's tasks list.
 */
export class TaskManager {
  private readonly taskCache: SlabCache;
  private readonly pids: PidAllocator;

  constructor(readonly kernel: Kernel, readonly memmap: MemMap, readonly pages: PageSource) {
    this.taskCache = new SlabCache(kernel, memmap, pages, 'task_struct_cachep');
    this.pids = new PidAllocator(kernel, memmap, pages);
  }

  /** Sets up the caches (kmem_cache_create) and the pid namespace (pid_idr_init). */
  initCache(): void {
    this.taskCache.create('task_struct', task_struct.size);
    this.pids.init();
  }

  private allocStack(pid: number, ip: bigint): bigint {
    const pfn = this.pages.allocPages(THREAD_SIZE_ORDER, 'kernel stack');
    const size = PAGE_SIZE << THREAD_SIZE_ORDER;
    for (let i = 0n; i < 1n << BigInt(THREAD_SIZE_ORDER); i++) {
      const p = blankPage();
      p._refcount = 1;
      this.memmap.set(pfn + i, p);
    }
    // A quiet stack: zeros, with a few frames of return addresses near the top.
    const stack = Buffer.alloc(size);
    for (let f = 0; f < 12; f++) {
      const off = size - 64 - f * 96;
      stack.writeBigUInt64LE(ip + BigInt((f * 37 + pid) % 200), off);
      stack.writeBigUInt64LE(Kernel.__va(pfn * PAGE_SIZE_N) + BigInt(off + 96), off - 8);
    }
    this.kernel.ram.write(pfn * PAGE_SIZE_N, stack);
    return Kernel.__va(pfn * PAGE_SIZE_N);
  }

  /** Initialises init_task (pid 0, swapper/0) with an empty tasks list. */
  initInitTask(ip: bigint): void {
    const self = this.kernel.sym('init_task').address;
    const t: TaskStruct = {
      ...task_struct.zero(),
      state: TASK_RUNNING, flags: PF_KTHREAD, pid: 0, tgid: 0, comm: 'swapper/0',
      tasks: { next: self + TASKS_OFFSET, prev: self + TASKS_OFFSET }, real_parent: self,
      thread_regs: { ...zeroRegs(), ip },
    };
    this.kernel.writeStruct(task_struct, 'init_task', t);
    this.pids.attachIdle(self);
    this.kernel.writeU32('nr_threads', 1);
    this.kernel.writeU32('last_pid', 0);
  }

  /** Creates a task (copy_process): allocates it, gives it a stack, links it into the task list. */
  create(spec: TaskSpec): TaskInfo {
    const pid = this.kernel.readU32('last_pid') + 1;
    const addr = this.taskCache.alloc();
    const stack = this.allocStack(pid, spec.ip);
    const head = this.kernel.sym('init_task').address + TASKS_OFFSET;
    const rd = (v: bigint): bigint => this.kernel.ram.readU64(this.kernel.pa(v));
    const wr = (v: bigint, x: bigint): void => this.kernel.ram.writeU64(this.kernel.pa(v), x);
    const prev = rd(head + 8n);
    const t: TaskStruct = {
      ...task_struct.zero(),
      state: spec.state, stack, flags: spec.kthread ? PF_KTHREAD : 0, cpu: 0,
      tasks: { next: head, prev }, mm: spec.mm ?? 0n, pid, tgid: pid,
      real_parent: this.kernel.sym('init_task').address, comm: spec.comm,
      start_time: this.kernel.readU64('sim_clock_ns'), rss_pages: spec.rssPages ?? 0n,
      thread_regs: { ...zeroRegs(), ip: spec.ip, sp: stack + BigInt((PAGE_SIZE << THREAD_SIZE_ORDER) - 64 - 8), cs: 0x10n, ss: 0x18n, flags: 0x246n },
    };
    this.kernel.ram.write(this.kernel.pa(addr), task_struct.toBytes(t));
    wr(prev, addr + TASKS_OFFSET);
    wr(head + 8n, addr + TASKS_OFFSET);
    this.pids.attach(addr, pid);
    this.kernel.writeU32('last_pid', pid);
    this.kernel.writeU32('nr_threads', this.kernel.readU32('nr_threads') + 1);
    return { ...t, address: addr };
  }
}

/**
 * Walks the task list from init_task through any MemoryReader, the live
 * machine or a dump; a list that does not come back is reported as corrupt.
 */
export function listTasks(mem: MemoryReader, initTask: bigint, limit = 100000): TaskInfo[] {
  const out: TaskInfo[] = [];
  let addr = initTask;
  for (let i = 0; i < limit; i++) {
    const t = task_struct.decode(viewOf(mem.read('virt', addr, task_struct.size)));
    out.push({ ...t, address: addr });
    const next = t.tasks.next - TASKS_OFFSET;
    if (next === initTask) return out;
    addr = next;
  }
  throw new CorruptDumpError(`task list from init_task does not return after ${limit} entries`, { struct: 'task_struct', field: 'tasks' });
}

/** The state letter ps and crash print. */
export function taskStateName(state: bigint): string {
  if (state === 0n) return 'RU';
  if (state & 0x1n) return 'IN';
  if (state & 0x2n) return 'UN';
  if (state & 0x4n) return 'ST';
  if (state & 0x80n) return 'DE';
  return `?${state}`;
}
