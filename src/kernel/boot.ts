import { CorruptDumpError, DumpError, formatSize, hex, viewOf } from '../codec/index.js';
import { firmwareE820, PAGE_SIZE_N, usablePfnRanges, type E820Range, type PciBus, type PhysicalRam, type PlatformFirmware } from '../machine/index.js';
import { bootLayoutAt, type BootLayout, type PhysRange } from './boot_layout.js';
import { reserveCrashkernel } from './crashkernel.js';
import { initCrashNotes } from './crash_core.js';
import { setupE820, systemRamBytes } from './e820.js';
import { BOOT_FLAG_MAGIC, boot_params, SETUP_HEADER_MAGIC } from './structs/boot_params.js';
import { E820_MAX_ENTRIES_ZEROPAGE } from './structs/e820.js';
import { vmcoreInit } from './vmcore/proc_vmcore.js';
import { COMMAND_LINE_SIZE, LOW_RESERVED_END, LOGLEVEL_INFO, LOGLEVEL_NOTICE, TASK_INTERRUPTIBLE } from './constants.js';
import { Kernel, readKernelHeader } from './kernel.js';
import { kernelLayout } from './layout.js';
import { BuddyAllocator } from './mm/buddy.js';
import { MemMap } from './mm/mem_map.js';
import { initMemMap, physRangeToPfns } from './mm/memmap_init.js';
import { buildPageTables } from './page_tables.js';
import { advanceClock, printk } from './printk.js';
import { Prng } from './prng.js';
import { uts_namespace } from './structs/new_utsname.js';
import { TaskManager, type PageSource } from './tasks.js';
import { storeVmcoreinfo, vmcoreinfoText } from './vmcoreinfo.js';
import { memmapReservations, pstoreInit } from './pstore/init.js';
import { fadumpReserveMem } from './fadump/reserve.js';
import { setupFadump } from './fadump/capture.js';
import { PCI_DRIVERS, probePciDrivers, type ProbeResult } from './drivers/index.js';

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
  /**
   * Physical address of the zero page (struct boot_params) a kexec loader
   * filled, as %rsi carries it: its command line, e820 map and initrd are
   * used instead of `cmdline` and the firmware's map.
   */
  zeroPage?: bigint;
  /**
   * The platform firmware the kernel talks to (RTAS on POWER): what it
   * says about firmware-assisted dump (rtas/ibm,kernel-dump, the section
   * sizes) and where fadump registers. Absent, the platform has none and
   * fadump=on says it is not supported.
   */
  firmware?: PlatformFirmware;
  /**
   * The machine's PCI bus: its drivers probe the devices on it (and, in a
   * crash recovery kernel, add their device dumps first). None: no driver runs.
   */
  bus?: PciBus;
  /** false: the drivers take no device dump even in a crash recovery kernel (see kexecReboot). */
  deviceDumps?: boolean;
}

export interface BootResult {
  kernel: Kernel;
  cpu: { cr3: bigint; kernel_base: bigint };
  layout: BootLayout;
  /** What each PCI driver's probe did (empty without a bus). */
  probes: ProbeResult[];
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

/** What a boot loader hands the kernel: its command line, the memory map, an initrd. */
export interface HandedOver {
  cmdline: string;
  e820: E820Range[];
  initrd: PhysRange | null;
}

/**
 * Reads the zero page a kexec loader filled (struct boot_params): the
 * command line at cmd_line_ptr, the e820 table, the initrd. Every count
 * and pointer is checked against RAM and the structure's capacity.
 */
export function readZeroPage(ram: PhysicalRam, zeroPage: bigint): HandedOver {
  const bad = (why: string, field: string): never => {
    throw new CorruptDumpError(`boot_params at ${hex(zeroPage)}: ${why}`, { struct: 'boot_params', field });
  };
  if (zeroPage + BigInt(boot_params.size) > ram.size) bad('outside RAM', 'zero page');
  const bp = boot_params.decode(viewOf(ram.read(zeroPage, boot_params.size)));
  if (bp.boot_flag !== BOOT_FLAG_MAGIC || bp.header !== SETUP_HEADER_MAGIC) bad('no setup header (boot_flag/header magic)', 'header');
  if (bp.e820_entries === 0 || bp.e820_entries > E820_MAX_ENTRIES_ZEROPAGE) bad(`e820_entries ${bp.e820_entries}`, 'e820_entries');
  const cmdPtr = BigInt(bp.cmd_line_ptr) | (BigInt(bp.ext_cmd_line_ptr) << 32n);
  if (cmdPtr === 0n || cmdPtr + BigInt(COMMAND_LINE_SIZE) > ram.size) bad(`cmd_line_ptr ${hex(cmdPtr)}`, 'cmd_line_ptr');
  const raw = ram.read(cmdPtr, COMMAND_LINE_SIZE);
  const nul = raw.indexOf(0);
  const cmdline = raw.subarray(0, nul < 0 ? COMMAND_LINE_SIZE - 1 : nul).toString('latin1');
  const e820 = bp.e820_table.slice(0, bp.e820_entries).map((e) => ({ addr: e.addr, size: e.size, type: e.type }));
  const rdImage = BigInt(bp.ramdisk_image) | (BigInt(bp.ext_ramdisk_image) << 32n);
  const rdSize = BigInt(bp.ramdisk_size) | (BigInt(bp.ext_ramdisk_size) << 32n);
  if (rdSize !== 0n && rdImage + rdSize > ram.size) bad(`initrd ${hex(rdImage)}+${hex(rdSize)} outside RAM`, 'ramdisk_image');
  return { cmdline, e820, initrd: rdSize !== 0n ? { start: rdImage, end: rdImage + rdSize } : null };
}

/**
 * The frames a kernel's FLATMEM mem_map covers: up to the end of usable
 * RAM, from pfn 0 when RAM runs on from the first MiB (a normal boot), or
 * from the first RAM above it when the only RAM there is where the kernel
 * was loaded (a capture kernel in its crashkernel region: ARCH_PFN_OFFSET).
 */
export function memMapSpan(e820: readonly E820Range[]): { minPfn: bigint; maxPfn: bigint } {
  const usable = usablePfnRanges(e820);
  const lowEnd = LOW_RESERVED_END / PAGE_SIZE_N;
  const node = usable.find(([, e]) => e > lowEnd);
  if (!node) throw new DumpError('USAGE', 'the memory map has no usable RAM above 1 MiB');
  return { minPfn: node[0] <= lowEnd ? 0n : node[0], maxPfn: usable[usable.length - 1][1] };
}

/** [s, e) pfn ranges minus others, sorted. */
function subtractPfns(ranges: Array<[bigint, bigint]>, minus: Array<[bigint, bigint]>): Array<[bigint, bigint]> {
  let cur = ranges.map(([s, e]) => [s, e] as [bigint, bigint]);
  for (const [ms, me] of minus) {
    const next: Array<[bigint, bigint]> = [];
    for (const [s, e] of cur) {
      if (me <= s || ms >= e) { next.push([s, e]); continue; }
      if (s < ms) next.push([s, ms]);
      if (me < e) next.push([me, e]);
    }
    cur = next;
  }
  return cur.filter(([s, e]) => e > s).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/**
 * start_kernel() for an image already loaded at `kernelBase`: page tables,
 * utsname, command line, log, the memory map, mem_map and the buddy
 * allocator, the crashkernel reservation, VMCOREINFO, init_task and the
 * kernel threads, and /proc/vmcore in a capture kernel. Writes only inside
 * the kernel's boot region (its image, mem_map and early allocations),
 * never elsewhere. A kernel loaded away from its link address runs
 * relocated (phys_base).
 */
export function bootKernel(ram: PhysicalRam, kernelBase: bigint, params: BootParams): BootResult {
  const header = readKernelHeader(ram, kernelBase);
  const config = { release: header.release, physicalStart: header.physical_start };
  const klayout = kernelLayout(config);
  // What the boot loader handed over is read before anything is written.
  const handed: HandedOver = params.zeroPage !== undefined ? readZeroPage(ram, params.zeroPage)
    : { cmdline: params.cmdline, e820: firmwareE820(ram.size), initrd: null };
  const { minPfn, maxPfn } = memMapSpan(handed.e820);
  if (maxPfn * PAGE_SIZE_N > ram.size) throw new DumpError('USAGE', `the memory map reaches ${hex(maxPfn * PAGE_SIZE_N)}, beyond the ${formatSize(ram.size)} of RAM`);
  if (kernelBase < config.physicalStart) throw new DumpError('USAGE', `kernel ${config.release} loaded at ${hex(kernelBase)}, below its CONFIG_PHYSICAL_START ${hex(config.physicalStart)}`);
  const blayout = bootLayoutAt(config, kernelBase, minPfn, maxPfn);
  const home = usablePfnRanges(handed.e820).find(([s, e]) => kernelBase / PAGE_SIZE_N >= s && kernelBase / PAGE_SIZE_N < e);
  if (!home || blayout.earlyEnd > home[1] * PAGE_SIZE_N) {
    throw new DumpError('USAGE', `RAM of ${formatSize(ram.size)} is too small for kernel ${config.release} at ${hex(kernelBase)} (needs usable RAM up to ${hex(blayout.earlyEnd)})`);
  }
  const bss = klayout.sections.bss;
  ram.zero(kernelBase + BigInt(bss.offset), bss.size);
  const pgdPhys = kernelBase + BigInt(klayout.symbols.find((s) => s.name === 'init_top_pgt')!.address - klayout.textVaddr);
  const cpu = { cr3: pgdPhys, kernel_base: kernelBase };
  const kernel = Kernel.open(ram, cpu);
  kernel.writeU64('phys_base', kernel.physBase);
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
  cmd.set(Buffer.from(handed.cmdline, 'latin1').subarray(0, COMMAND_LINE_SIZE - 1));
  kernel.writeBytes('boot_command_line', cmd);
  kernel.writeU64('saved_command_line', kernel.sym('boot_command_line').address);

  const banner = kernel.readBytes('linux_banner').toString('latin1');
  printk(kernel, banner.slice(0, banner.indexOf('\n')), LOGLEVEL_NOTICE);
  tick(2);
  printk(kernel, `Command line: ${handed.cmdline}`);
  printk(kernel, 'x86/fpu: x87 FPU will use FXSAVE');
  const e820 = setupE820(kernel, handed.e820);
  printk(kernel, 'NX (Execute Disable) protection: active');
  printk(kernel, 'DMI not present or invalid.');
  tick(50);
  printk(kernel, `Hypervisor detected: lkcd-softboot simulator`);
  printk(kernel, `last_pfn = 0x${maxPfn.toString(16)} max_arch_pfn = 0x400000000`);

  kernel.writeU64('mem_map', Kernel.__va(blayout.memMapPhys));
  kernel.writeU64('min_low_pfn', minPfn);
  kernel.writeU64('max_pfn', maxPfn);
  kernel.writeU64('initrd_start', handed.initrd ? Kernel.__va(handed.initrd.start) : 0n);
  kernel.writeU64('initrd_end', handed.initrd ? Kernel.__va(handed.initrd.end) : 0n);
  const early = params.earlyReserve ? params.earlyReserve(kernel) : [];
  // memmap=nn$ss: ranges kept from the allocator (the ramoops region).
  const memmapRes = memmapReservations(params.cmdline, ram.size);
  for (const l of memmapRes.lines) printk(kernel, l);
  const reservedPfns: Array<[bigint, bigint]> = [
    physRangeToPfns(0n, LOW_RESERVED_END),
    physRangeToPfns(blayout.imageStart, blayout.earlyEnd),
    ...(handed.initrd ? [physRangeToPfns(handed.initrd.start, handed.initrd.end)] : []),
    ...early.map((r) => physRangeToPfns(r.start, r.end)),
    ...memmapRes.ranges.map((r) => physRangeToPfns(r.start, r.end)),
  ];
  const usable = usablePfnRanges(e820);
  const freeSoFar = subtractPfns(usable, reservedPfns).map(([s, e]) => ({ start: s * PAGE_SIZE_N, end: e * PAGE_SIZE_N }));
  // early_init_devtree(): fadump_reserve_mem() first; crashkernel= is reserved for kdump only when fadump reserved nothing.
  const fadump = fadumpReserveMem(kernel, handed.cmdline, params.firmware ?? null, e820, freeSoFar, config);
  for (const r of fadump ?? []) reservedPfns.push(physRangeToPfns(r.start, r.end));
  const crash = fadump ? null : reserveCrashkernel(kernel, handed.cmdline, systemRamBytes(e820), freeSoFar);
  if (crash) reservedPfns.push(physRangeToPfns(crash.start, crash.end));
  tick(300);
  const memmap = new MemMap(kernel);
  const inNode = subtractPfns(usable, [[0n, minPfn], [maxPfn, maxPfn + (1n << 52n)]]);
  const freed = initMemMap(kernel, memmap, subtractPfns(inNode, reservedPfns));
  kernel.writeU64('_totalram_pages', freed);
  const kb = (pages: bigint): string => `${pages * 4n}K`;
  const sec = klayout.sections;
  const frames = maxPfn - minPfn;
  printk(kernel, `Memory: ${kb(freed)}/${kb(frames)} available (${sec.text.size >> 10}K kernel code, ${sec.data.size >> 10}K rwdata, ${sec.rodata.size >> 10}K rodata, ${sec.bss.size >> 10}K bss, ${kb(frames - freed)} reserved)`);
  tick(100);

  storeVmcoreinfo(kernel, vmcoreinfoText(kernel));
  initCrashNotes(kernel);
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
  // Initcalls: fadump (subsys), ramoops and pstore; /proc/vmcore (fs_initcall); then the PCI drivers
  // (device_initcall), which in a crash recovery kernel add their device dumps before they initialise their devices.
  const buddy = new BuddyAllocator(kernel, memmap);
  const fadumpElfcorehdr = setupFadump(kernel, memmap, buddy, params.firmware ?? null);
  pstoreInit(kernel, memmap, memmapRes.ranges);
  vmcoreInit(kernel, buddy, handed.cmdline, fadumpElfcorehdr);
  const probes = params.bus ? probePciDrivers(kernel, new BuddyAllocator(kernel, memmap), params.bus, PCI_DRIVERS, { deviceDumps: params.deviceDumps }) : [];
  printk(kernel, `EXT4-fs (vda1): mounted filesystem with ordered data mode. Opts: (null)`);
  printk(kernel, `Freeing unused kernel image memory: 1024K`);
  tick(200);
  printk(kernel, `Run /sbin/init as init process`, LOGLEVEL_INFO);
  tasks.create({ comm: 'systemd', state: TASK_INTERRUPTIBLE, kthread: false, mm: 1n, ip: kernel.sym('do_syscall_64').address });
  kernel.flush();
  return { kernel, cpu, layout: blayout, probes };
}


