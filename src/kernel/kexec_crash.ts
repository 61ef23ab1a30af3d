/**
 * kexec_load(KEXEC_ON_CRASH) and crash_kexec() (kernel/kexec.c,
 * kernel/kexec_core.c): a capture kernel's segments are copied straight
 * into the crashkernel region at load time, never elsewhere; at a panic
 * the crashing CPU's registers go to crash_notes, CRASHTIME to VMCOREINFO,
 * and the CPU enters the image's purgatory, which backs up the low memory
 * and boots the capture kernel inside the region.
 */
import { CorruptDumpError, hex, UsageError, viewOf } from '../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../machine/index.js';
import { COMMAND_LINE_SIZE, KEXEC_TYPE_CRASH } from './constants.js';
import { crashSaveCpu, crashSaveVmcoreinfo } from './crash_core.js';
import { crashkernelRegion, describeRegion } from './crashkernel.js';
import { Kernel } from './kernel.js';
import type { BuddyAllocator } from './mm/buddy.js';
import { blankPage } from './mm/buddy.js';
import type { MemMap } from './mm/mem_map.js';
import { kernelWallClock, type PanicInfo } from './panic.js';
import { KEXEC_SEGMENT_MAX, KIMAGE_MAGIC, kimage, type Kimage } from './structs/kimage.js';
import { sim_purgatory, SIM_PURGATORY_MAGIC } from './structs/purgatory.js';
import { task_struct } from './structs/task_struct.js';

/**
 * Memory a capture kernel needs free after its early allocations: the
 * pages vmcore_init() takes for /proc/vmcore's headers, notes and chunk
 * list, and room for its tasks. kexec -p refuses a region that leaves less.
 */
export const CAPTURE_KERNEL_MIN_FREE = 1n << 20n;

/** One segment as the loader passes it: `bytes` at `mem`, zero-filled up to `memsz`. */
export interface CrashSegment {
  mem: bigint;
  bytes: Uint8Array;
  memsz: bigint;
}

export interface CrashLoadSpec {
  segments: CrashSegment[];
  /** kimage.start: the purgatory page. */
  entry: bigint;
  release: string;
  cmdline: string;
}

export interface LoadedCrashKernel {
  address: bigint;
  image: Kimage;
}

function readCrashKimage(kernel: Kernel): LoadedCrashKernel | null {
  const addr = kernel.readU64('kexec_crash_image');
  if (addr === 0n) return null;
  const phys = Kernel.__pa(addr);
  if (phys < 0n || phys + PAGE_SIZE_N > kernel.ram.size) throw new CorruptDumpError(`kexec_crash_image ${hex(addr)} points outside RAM`, { field: 'kexec_crash_image' });
  const image = kernel.readPhysStruct(kimage, phys);
  if (image.magic !== KIMAGE_MAGIC || image.type !== KEXEC_TYPE_CRASH) throw new CorruptDumpError(`kexec_crash_image ${hex(addr)} does not point to a crash kimage`, { struct: 'kimage', field: 'magic' });
  if (image.nr_segments > KEXEC_SEGMENT_MAX) throw new CorruptDumpError(`kimage nr_segments ${image.nr_segments} exceeds ${KEXEC_SEGMENT_MAX}`, { struct: 'kimage', field: 'nr_segments' });
  return { address: addr, image };
}

/** The loaded capture kernel, if any (/sys/kernel/kexec_crash_loaded). */
export function kexecCrashLoaded(kernel: Kernel): LoadedCrashKernel | null {
  return readCrashKimage(kernel);
}

/** kexec -p -u: frees the kimage; the region keeps its bytes, as the kernel leaves it. */
export function kexecUnloadCrash(kernel: Kernel, buddy: BuddyAllocator): boolean {
  const loaded = readCrashKimage(kernel);
  if (!loaded) return false;
  kernel.writeU64('kexec_crash_image', 0n);
  buddy.free(Kernel.__pa(loaded.address) / PAGE_SIZE_N, 0);
  return true;
}

/**
 * sanity_check_segment_list() for a crash image: at most
 * KEXEC_SEGMENT_MAX page-aligned segments, no overlap, each inside the
 * crashkernel region (-EADDRNOTAVAIL otherwise).
 */
function checkSegments(region: { start: bigint; end: bigint }, segs: readonly CrashSegment[]): void {
  if (segs.length === 0 || segs.length > KEXEC_SEGMENT_MAX) throw new UsageError(`kexec_load: ${segs.length} segments (1 to ${KEXEC_SEGMENT_MAX} allowed)`);
  const sorted = [...segs].sort((a, b) => (a.mem < b.mem ? -1 : a.mem > b.mem ? 1 : 0));
  sorted.forEach((s, i) => {
    const end = s.mem + s.memsz;
    if (s.mem % PAGE_SIZE_N !== 0n || end % PAGE_SIZE_N !== 0n) throw new UsageError(`kexec_load: segment ${hex(s.mem)}+${hex(s.memsz)} is not page aligned`);
    if (BigInt(s.bytes.length) > s.memsz) throw new UsageError(`kexec_load: segment at ${hex(s.mem)} has more bytes than its memsz`);
    if (s.mem < region.start || end > region.end) throw new UsageError(`kexec_load: segment ${hex(s.mem)}-${hex(end - 1n)} is outside the crashkernel region ${describeRegion(region)}`);
    if (i > 0 && sorted[i - 1].mem + sorted[i - 1].memsz > s.mem) throw new UsageError(`kexec_load: segments at ${hex(sorted[i - 1].mem)} and ${hex(s.mem)} overlap`);
  });
}

/**
 * kexec_load() with KEXEC_ON_CRASH: replaces any loaded capture kernel,
 * copies each segment into the crashkernel region (zero-filled to its
 * memsz, kimage_load_crash_segment), and publishes the kimage in
 * kexec_crash_image.
 */
export function kexecLoadCrash(kernel: Kernel, buddy: BuddyAllocator, memmap: MemMap, spec: CrashLoadSpec): LoadedCrashKernel {
  const region = crashkernelRegion(kernel);
  if (!region) throw new UsageError('kexec_load: no crashkernel region is reserved (boot with crashkernel=SIZE)');
  if (Buffer.byteLength(spec.cmdline, 'latin1') >= COMMAND_LINE_SIZE) throw new UsageError(`command line of ${spec.cmdline.length} bytes is longer than COMMAND_LINE_SIZE-1 (${COMMAND_LINE_SIZE - 1})`);
  checkSegments(region, spec.segments);
  kexecUnloadCrash(kernel, buddy);
  for (const s of spec.segments) {
    const full = Buffer.alloc(Number(s.memsz));
    full.set(s.bytes);
    kernel.ram.write(s.mem, full);
  }
  const pfn = buddy.allocOrThrow(0, 'kimage');
  memmap.set(pfn, { ...blankPage(), _refcount: 1 });
  const empty = { buf: 0n, bufsz: 0n, mem: 0n, memsz: 0n };
  const k: Kimage = {
    magic: KIMAGE_MAGIC, head: 0n, start: spec.entry, nr_segments: spec.segments.length, type: KEXEC_TYPE_CRASH,
    segment: [...spec.segments.map((s) => ({ buf: 0n, bufsz: BigInt(s.bytes.length), mem: s.mem, memsz: s.memsz })),
      ...Array.from({ length: KEXEC_SEGMENT_MAX - spec.segments.length }, () => empty)],
    release: spec.release, _pad: '', cmdline_len: Buffer.byteLength(spec.cmdline, 'latin1'), cmdline: spec.cmdline,
  };
  const page = Buffer.alloc(PAGE_SIZE);
  page.set(kimage.toBytes(k));
  kernel.ram.write(pfn * PAGE_SIZE_N, page);
  const address = Kernel.__va(pfn * PAGE_SIZE_N);
  kernel.writeU64('kexec_crash_image', address);
  return { address, image: k };
}

/** Where purgatory jumps: the capture kernel's entry and its zero page. */
export interface CrashJump {
  entry: bigint;
  zeroPage: bigint;
  backup: { src: bigint; size: bigint; dest: bigint } | null;
}

/**
 * purgatory(): reads its parameters at kimage.start (inside the region),
 * copies the backup source into the backup segment, and returns where the
 * capture kernel starts. Writes only inside the crashkernel region.
 */
function purgatory(kernel: Kernel, start: bigint, region: { start: bigint; end: bigint }): CrashJump {
  if (start < region.start || start + BigInt(sim_purgatory.size) > region.end) throw new CorruptDumpError(`purgatory at ${hex(start)} is outside the crashkernel region`, { struct: 'kimage', field: 'start' });
  const p = sim_purgatory.decode(viewOf(kernel.ram.read(start, sim_purgatory.size)));
  if (p.magic !== SIM_PURGATORY_MAGIC) throw new CorruptDumpError(`no purgatory at ${hex(start)}: the capture kernel image in the crashkernel region was overwritten`, { struct: 'sim_purgatory', field: 'magic' });
  const inRegion = (a: bigint, n: bigint): boolean => a >= region.start && a + n <= region.end;
  if (!inRegion(p.entry, PAGE_SIZE_N) || !inRegion(p.zero_page, PAGE_SIZE_N)) throw new CorruptDumpError(`purgatory: entry ${hex(p.entry)} or zero page ${hex(p.zero_page)} outside the crashkernel region`, { struct: 'sim_purgatory' });
  let backup: CrashJump['backup'] = null;
  if (p.backup_start !== 0n) {
    if (!inRegion(p.backup_start, p.backup_src_size) || p.backup_src_start + p.backup_src_size > kernel.ram.size) {
      throw new CorruptDumpError(`purgatory: backup ${hex(p.backup_src_start)}+${hex(p.backup_src_size)} -> ${hex(p.backup_start)} is out of bounds`, { struct: 'sim_purgatory' });
    }
    kernel.ram.write(p.backup_start, kernel.ram.read(p.backup_src_start, Number(p.backup_src_size)));
    backup = { src: p.backup_src_start, size: p.backup_src_size, dest: p.backup_start };
  }
  return { entry: p.entry, zeroPage: p.zero_page, backup };
}

/**
 * __crash_kexec(): with a capture kernel loaded, saves the crashing CPU's
 * registers (NT_PRSTATUS in crash_notes) and CRASHTIME, and enters
 * purgatory. Returns null when no capture kernel is loaded.
 */
export function crashKexec(kernel: Kernel, panic: PanicInfo): CrashJump | null {
  const loaded = readCrashKimage(kernel);
  if (!loaded) return null;
  const region = crashkernelRegion(kernel);
  if (!region) throw new CorruptDumpError('a capture kernel is loaded but crashk_res is empty', { field: 'crashk_res' });
  crashSaveVmcoreinfo(kernel, kernelWallClock(kernel).sec);
  let pid = 0;
  if (panic.currentTask !== 0n) {
    pid = kernel.readPhysStruct(task_struct, kernel.pa(panic.currentTask)).pid;
  }
  crashSaveCpu(kernel, kernel.readU32('panic_cpu'), panic.regs, pid);
  kernel.flush();
  return purgatory(kernel, loaded.image.start, region);
}

