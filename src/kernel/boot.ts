import { DumpError, formatSize } from '../codec/index.js';
import { PAGE_SIZE_N, type PhysicalRam } from '../machine/index.js';
import { bootLayout, type BootLayout, type PhysRange } from './boot_layout.js';
import { COMMAND_LINE_SIZE, LOW_RESERVED_END, LOGLEVEL_INFO, LOGLEVEL_NOTICE, TASK_INTERRUPTIBLE } from './constants.js';
import { Kernel, readKernelHeader } from './kernel.js';
import { kernelLayout } from './layout.js';
import { BuddyAllocator } from './mm/buddy.js';
import { MemMap } from './mm/mem_map.js';
import { freeRangesOutside, initMemMap, physRangeToPfns } from './mm/memmap_init.js';
import { buildPageTables } from './page_tables.js';
import { advanceClock, printk } from './printk.js';
import { Prng } from './prng.js';
import { uts_namespace } from './structs/new_utsname.js';
import { TaskManager, type PageSource } from './tasks.js';
import { storeVmcoreinfo, vmcoreinfoText } from './vmcoreinfo.js';
import { memmapReservations, pstoreInit } from './pstore/init.js';

export interface BootParams {
  cmdline: string;
  hostname: string;
  /** Wall-clock time of the boot, seconds since the epoch. */
  bootTime: bigint;
  /** Seed for boot timings (printk timestamps). */
  seed: number;
  /**
   * Runs after paging and the log are up, before any allocation: returns
   * physical ranges to keep reserved (the crashdump= reservation).
   */
  earlyReserve?: (kernel: Kernel) => PhysRange[];
}

export interface BootResult {
  kernel: Kernel;
  cpu: { cr3: bigint; kernel_base: bigint };
  layout: BootLayout;
}

/** memblock: a bump allocator over the early region, used before the buddy allocator exists. */
class EarlyAllocator implements PageSource {
  private nextPfn: bigint;
  private readonly endPfn: bigint;
  constructor(layout: BootLayout) {
    this.nextPfn = layout.earlyStart / PAGE_SIZE_N;
    this.endPfn = layout.earlyEnd / PAGE_SIZE_N;
  }
  allocPages(order: number, what: string): bigint {
    const n = 1n << BigInt(order);
    const pfn = (this.nextPfn + n - 1n) & ~(n - 1n);
    if (pfn + n > this.endPfn) throw new DumpError('INTERNAL', `early allocator exhausted allocating ${what}`);
    this.nextPfn = pfn + n;
    return pfn;
  }
}

/** The buddy allocator as a PageSource for code that runs after boot. */
export function buddyPageSource(buddy: BuddyAllocator): PageSource {
  return { allocPages: (order, what) => buddy.allocOrThrow(order, what) };
}

const KTHREADS: Array<[string, string]> = [
  ['kthreadd', 'kthread'], ['rcu_gp', 'worker_thread'], ['kworker/0:0H', 'worker_thread'],
  ['mm_percpu_wq', 'worker_thread'], ['ksoftirqd/0', 'schedule'], ['rcu_sched', 'schedule'],
  ['migration/0', 'schedule'], ['kdevtmpfs', 'schedule'], ['khungtaskd', 'schedule'],
  ['kswapd0', 'schedule'], ['kworker/0:1', 'worker_thread'], ['jbd2/vda1-8', 'schedule'],
];

/**
 * start_kernel() for an image already loaded at `kernelBase`: page tables,
 * utsname, command line, log, mem_map and the buddy allocator, VMCOREINFO,
 * init_task and the kernel threads. Writes only inside the kernel's boot
 * region (its image, mem_map and early allocations), never elsewhere.
 */
export function bootKernel(ram: PhysicalRam, kernelBase: bigint, params: BootParams): BootResult {
  const header = readKernelHeader(ram, kernelBase);
  const config = { release: header.release, physicalStart: header.physical_start };
  const klayout = kernelLayout(config);
  const blayout = bootLayout(ram.size, config);
  if (blayout.earlyEnd > ram.size) {
    throw new DumpError('USAGE', `RAM of ${formatSize(ram.size)} is too small for kernel ${config.release} (needs more than ${formatSize(blayout.earlyEnd)})`);
  }
  const bss = klayout.sections.bss;
  ram.zero(kernelBase + BigInt(bss.offset), bss.size);
  const pgdPhys = kernelBase + BigInt(klayout.symbols.find((s) => s.name === 'init_top_pgt')!.address - klayout.textVaddr);
  const cpu = { cr3: pgdPhys, kernel_base: kernelBase };
  const kernel = Kernel.open(ram, cpu);
  buildPageTables(kernel, ram.size);

  const rng = new Prng(params.seed ^ 0x5eed);
  // Boot steps take up to `maxMs` milliseconds each: a boot reaches init after about a second.
  const tick = (maxMs: number): void => { advanceClock(kernel, BigInt(1 + rng.below(maxMs * 1000)) * 1000n); };
  kernel.writeU64('sim_clock_ns', 0n);
  kernel.writeU64('sim_boot_time', params.bootTime);

  const uts = kernel.readStruct(uts_namespace, 'init_uts_ns');
  uts.name.nodename = params.hostname;
  kernel.writeStruct(uts_namespace, 'init_uts_ns', uts);
  const cmd = Buffer.alloc(COMMAND_LINE_SIZE);
  cmd.set(Buffer.from(params.cmdline, 'latin1').subarray(0, COMMAND_LINE_SIZE - 1));
  kernel.writeBytes('boot_command_line', cmd);
  kernel.writeU64('saved_command_line', kernel.sym('boot_command_line').address);

  const banner = kernel.readBytes('linux_banner').toString('latin1');
  printk(kernel, banner.slice(0, banner.indexOf('\n')), LOGLEVEL_NOTICE);
  tick(2);
  printk(kernel, `Command line: ${params.cmdline}`);
  printk(kernel, 'x86/fpu: x87 FPU will use FXSAVE');
  printk(kernel, 'BIOS-provided physical RAM map:');
  printk(kernel, `BIOS-e820: [mem 0x${'0'.repeat(16)}-0x${(ram.size - 1n).toString(16).padStart(16, '0')}] usable`);
  printk(kernel, 'NX (Execute Disable) protection: active');
  printk(kernel, 'DMI not present or invalid.');
  tick(50);
  printk(kernel, `Hypervisor detected: lkcd-softboot simulator`);
  const maxPfn = ram.size / PAGE_SIZE_N;
  printk(kernel, `last_pfn = 0x${maxPfn.toString(16)} max_arch_pfn = 0x400000000`);

  kernel.writeU64('mem_map', Kernel.__va(blayout.memMapPhys));
  kernel.writeU64('max_pfn', maxPfn);
  const early = params.earlyReserve ? params.earlyReserve(kernel) : [];
  // memmap=nn$ss: ranges kept from the allocator (the ramoops region).
  const memmapRes = memmapReservations(params.cmdline, ram.size);
  for (const l of memmapRes.lines) printk(kernel, l);
  const reservedPfns: Array<[bigint, bigint]> = [
    physRangeToPfns(0n, LOW_RESERVED_END),
    physRangeToPfns(blayout.imageStart, blayout.earlyEnd),
    ...early.map((r) => physRangeToPfns(r.start, r.end)),
    ...memmapRes.ranges.map((r) => physRangeToPfns(r.start, r.end)),
  ];
  tick(300);
  const memmap = new MemMap(kernel);
  const freed = initMemMap(kernel, memmap, freeRangesOutside(reservedPfns, maxPfn));
  kernel.writeU64('_totalram_pages', freed);
  const kb = (pages: bigint): string => `${pages * 4n}K`;
  const sec = klayout.sections;
  printk(kernel, `Memory: ${kb(freed)}/${kb(maxPfn)} available (${sec.text.size >> 10}K kernel code, ${sec.data.size >> 10}K rwdata, ${sec.rodata.size >> 10}K rodata, ${sec.bss.size >> 10}K bss, ${kb(maxPfn - freed)} reserved)`);
  tick(100);

  storeVmcoreinfo(kernel, vmcoreinfoText(kernel));
  printk(kernel, `crash_core: vmcoreinfo of ${kernel.readU64('vmcoreinfo_size')} bytes at 0x${kernel.symPhys('vmcoreinfo_data').toString(16)}`);

  // Kernel threads take their task_structs and stacks from memblock, inside the boot region.
  const earlyAlloc = new EarlyAllocator(blayout);
  const tasks = new TaskManager(kernel, memmap, earlyAlloc);
  tasks.initCache();
  tasks.initInitTask(kernel.sym('do_idle').address);
  for (const [comm, fn] of KTHREADS) {
    tasks.create({ comm, state: TASK_INTERRUPTIBLE, kthread: true, ip: kernel.sym(fn).address });
    tick(20);
  }
  printk(kernel, `smpboot: CPU0: lkcd-softboot virtual CPU (family: 0x6, model: 0x55, stepping: 0x4)`);
  printk(kernel, `devtmpfs: initialized`);
  tick(400);
  // Initcalls: ramoops and pstore, then the drivers that register device state with it.
  pstoreInit(kernel, memmap, memmapRes.ranges);
  printk(kernel, `EXT4-fs (vda1): mounted filesystem with ordered data mode. Opts: (null)`);
  printk(kernel, `Freeing unused kernel image memory: 1024K`);
  tick(200);
  printk(kernel, `Run /sbin/init as init process`, LOGLEVEL_INFO);
  tasks.create({ comm: 'systemd', state: TASK_INTERRUPTIBLE, kthread: false, mm: 1n, ip: kernel.sym('do_syscall_64').address });
  kernel.flush();
  return { kernel, cpu, layout: blayout };
}


