/**
 * kexec -p: what kexec-tools does in userspace to load a capture kernel
 * (kexec/arch/i386/crashdump-x86.c load_crashdump_segments, the x86_64
 * loaders): find the "Crash kernel" region and System RAM in /proc/iomem,
 * place the kernel at the bottom of the region and every other segment
 * top-down (backup of the low 640 KiB, the ELF core header, purgatory,
 * the zero page with the command line, the initrd), build the ELF core
 * header and the capture kernel's memory map, and append elfcorehdr=.
 * Refuses, with one line, a region too small for the capture kernel to
 * boot in, rather than failing at the crash.
 */
import { formatSize, hex, UsageError, viewOf } from '../src/codec/index.js';
import { E820_TYPE_RAM, E820_TYPE_RESERVED, PAGE_SIZE, PAGE_SIZE_N, type E820Range } from '../src/machine/index.js';
import {
  BOOT_FLAG_MAGIC, BOOT_PROTOCOL_VERSION, boot_params, bootLayoutAt, COMMAND_LINE_SIZE, crashNotesLocation,
  E820_MAX_ENTRIES_ZEROPAGE, e820_entry, iomemResources, NR_CPUS, PAGE_OFFSET, SETUP_HEADER_MAGIC, sim_purgatory,
  SIM_PURGATORY_MAGIC, vmcoreinfoNoteLocation, CAPTURE_KERNEL_MIN_FREE, fadumpStatus,
  type CrashLoadSpec, type CrashSegment, type Kernel, type KernelImage, type PhysRange,
} from '../src/kernel/index.js';
import { crashCreateElf64Headers, excludeRegion, type MemoryRange } from './crashdump_elf.js';

/** CONFIG_PHYSICAL_ALIGN of x86_64: a relocatable kernel runs at a 2 MiB-aligned address. */
export const CONFIG_PHYSICAL_ALIGN = 2n << 20n;
/** BACKUP_SRC_START/END (crashdump-x86.h): the first 640 KiB, when /proc/iomem has no range of its own for it. */
export const BACKUP_SRC_START = 0x0n;
export const BACKUP_SRC_END = 0x9ffffn;
/** The low-memory range get_backup_area() looks for must end at or below this. */
const BACKUP_SRC_LIMIT = 0xa0000n;
/** kexec-tools makes the ELF core header segment at least 16 KiB (the "ld gap" hack). */
const ELFCOREHDR_MIN_MEMSZ = 16n * 1024n;

function pageUp(n: bigint): bigint {
  return (n + PAGE_SIZE_N - 1n) & ~(PAGE_SIZE_N - 1n);
}

export interface PanicSegmentInfo { what: string; mem: bigint; memsz: bigint }

export interface PanicLoadPlan {
  spec: CrashLoadSpec;
  region: PhysRange;
  loadAddr: bigint;
  elfcorehdr: bigint;
  segments: PanicSegmentInfo[];
  /** Bytes free in the region after the capture kernel's boot allocations. */
  freeAfterBoot: bigint;
  cmdline: string;
}

/** The "Crash kernel" resource of /proc/iomem (the last one, as get_crash_kernel_load_range picks). */
export function crashRegionFromIomem(kernel: Kernel): PhysRange | null {
  let found: PhysRange | null = null;
  for (const top of iomemResources(kernel)) {
    for (const c of top.children) if (c.name === 'Crash kernel') found = { start: c.start, end: c.end + 1n };
  }
  return found;
}

/** get_crash_memory_ranges(): System RAM ranges of /proc/iomem, and the Reserved ones, inclusive ends. */
function iomemRanges(kernel: Kernel): { ram: MemoryRange[]; reserved: MemoryRange[] } {
  const ram: MemoryRange[] = [];
  const reserved: MemoryRange[] = [];
  for (const r of iomemResources(kernel)) {
    if (r.name.includes('System RAM')) ram.push({ start: r.start, end: r.end });
    else if (r.name === 'Reserved' || r.name === 'reserved') reserved.push({ start: r.start, end: r.end });
  }
  return { ram, reserved };
}

/** add_memmap()/delete_memmap() on a list of e820-style ranges. */
function deleteFromMap(map: E820Range[], addr: bigint, size: bigint): E820Range[] {
  const out: E820Range[] = [];
  for (const r of map) {
    const end = r.addr + r.size;
    if (addr + size <= r.addr || addr >= end) { out.push(r); continue; }
    if (r.addr < addr) out.push({ addr: r.addr, size: addr - r.addr, type: r.type });
    if (addr + size < end) out.push({ addr: addr + size, size: end - addr - size, type: r.type });
  }
  return out;
}

/**
 * Plans kexec -p for `image` on the running kernel: every segment, the
 * ELF core header, the command line with elfcorehdr=. Throws UsageError
 * when no region is reserved or the capture kernel would not fit.
 */
export function planPanicLoad(kernel: Kernel, image: KernelImage, cmdline: string, initrd: Uint8Array | null): PanicLoadPlan {
  const region = crashRegionFromIomem(kernel);
  if (!region) {
    // With fadump=on, crashkernel= sizes fadump's boot memory and no region is reserved for kdump (POWER's early_init_devtree).
    if (fadumpStatus(kernel)) throw new UsageError('memory for crashkernel is not reserved: this kernel booted with fadump=on, which takes crashkernel= as its boot memory size (use kdumpctl start to register fadump, or boot without fadump=on for kdump)');
    throw new UsageError('memory for crashkernel is not reserved: boot with crashkernel=SIZE (e.g. crashkernel=32M), then load the capture kernel');
  }
  const config = image.layout.config;
  const align = (x: bigint, a: bigint): bigint => ((x + a - 1n) / a) * a;
  const loadAddr = align(region.start, CONFIG_PHYSICAL_ALIGN) > config.physicalStart ? align(region.start, CONFIG_PHYSICAL_ALIGN) : config.physicalStart;
  const boot = bootLayoutAt(config, loadAddr, region.start / PAGE_SIZE_N, region.end / PAGE_SIZE_N);

  const { ram, reserved } = iomemRanges(kernel);
  const ranges = excludeRegion(ram, region.start, region.end - 1n);
  // get_backup_area(): the first RAM range that lies in the low 640 KiB, else the default.
  const low = ranges.find((r) => r.end <= BACKUP_SRC_LIMIT);
  const backupSrc = low ? { start: low.start, size: low.end - low.start + 1n } : { start: BACKUP_SRC_START, size: BACKUP_SRC_END - BACKUP_SRC_START + 1n };

  // Top-down placement inside the region (add_buffer with end = -1).
  let top = region.end;
  let segBytes = 0n;
  let overflow = false;
  const place = (bytes: bigint): bigint => {
    const size = pageUp(bytes);
    segBytes += size;
    if (top - size < region.start) { overflow = true; return region.start; }
    top -= size;
    return top;
  };
  const segments: PanicSegmentInfo[] = [];
  const backupMem = pageUp(backupSrc.size);
  const backupAt = place(backupMem);
  segments.push({ what: 'backup of low memory', mem: backupAt, memsz: backupMem });

  const notes = Array.from({ length: NR_CPUS }, (_, cpu) => {
    const n = crashNotesLocation(kernel, cpu);
    return { paddr: n.paddr, size: BigInt(n.size) };
  });
  const vmci = vmcoreinfoNoteLocation(kernel);
  notes.push({ paddr: vmci.paddr, size: BigInt(vmci.size) });
  const text = kernel.sym('_text').address;
  const textPhys = iomemResources(kernel).flatMap((r) => r.children).find((c) => c.name === 'Kernel code')!.start;
  const hdr = crashCreateElf64Headers({
    notes,
    kernelText: { vaddr: text, paddr: textPhys, size: pageUp(kernel.sym('_end').address - text) },
    ram: ranges,
    pageOffset: PAGE_OFFSET,
    backup: { srcStart: backupSrc.start, srcSize: backupSrc.size, dest: backupAt },
  });
  const hdrMem = BigInt(hdr.length) > ELFCOREHDR_MIN_MEMSZ ? pageUp(BigInt(hdr.length)) : ELFCOREHDR_MIN_MEMSZ;
  const elfcorehdr = place(hdrMem);
  segments.push({ what: 'ELF core header', mem: elfcorehdr, memsz: hdrMem });

  const purgatoryAt = place(PAGE_SIZE_N);
  segments.push({ what: 'purgatory', mem: purgatoryAt, memsz: PAGE_SIZE_N });
  const zeroPageMem = PAGE_SIZE_N + pageUp(BigInt(COMMAND_LINE_SIZE));
  const zeroPageAt = place(zeroPageMem);
  segments.push({ what: 'zero page and command line', mem: zeroPageAt, memsz: zeroPageMem });
  let initrdAt = 0n;
  if (initrd) {
    initrdAt = place(BigInt(initrd.length));
    segments.push({ what: 'initramfs', mem: initrdAt, memsz: pageUp(BigInt(initrd.length)) });
  }
  const kernelSegs: CrashSegment[] = image.segments.map((s) => ({
    mem: loadAddr + (s.paddr - config.physicalStart), bytes: s.bytes, memsz: pageUp(s.memsz),
  }));
  segments.unshift({ what: `kernel ${config.release}`, mem: loadAddr, memsz: boot.imageEnd - boot.imageStart });

  // The capture kernel's own boot footprint (image, mem_map, early allocations) grows up from
  // loadAddr; the other segments come down from the top. They must not meet.
  const lowest = top;
  const need = (boot.earlyEnd - region.start) + CAPTURE_KERNEL_MIN_FREE + segBytes;
  if (overflow || boot.earlyEnd + CAPTURE_KERNEL_MIN_FREE > lowest) {
    throw new UsageError(`crashkernel region of ${formatSize(region.end - region.start)} at ${hex(region.start)} is too small for the capture kernel ${config.release}: it needs at least ${formatSize(pageUp(need))} `
      + `(kernel image ${formatSize(boot.imageEnd - boot.imageStart)}, its mem_map ${formatSize(boot.memMapBytes)} and early allocations ${formatSize(boot.earlyEnd - boot.earlyStart)}, `
      + `${formatSize(segBytes)} of segments (backup, ELF core header, purgatory, zero page${initrd ? ', initramfs' : ''}), ${formatSize(CAPTURE_KERNEL_MIN_FREE)} free); boot with a larger crashkernel=`);
  }

  const fullCmdline = `${cmdline}${cmdline ? ' ' : ''}elfcorehdr=${elfcorehdr / 1024n}K`;
  if (Buffer.byteLength(fullCmdline, 'latin1') >= COMMAND_LINE_SIZE) throw new UsageError(`the capture kernel's command line of ${fullCmdline.length} bytes exceeds COMMAND_LINE_SIZE-1 (${COMMAND_LINE_SIZE - 1})`);

  // The capture kernel's memory map: the backup source and the region as RAM, minus the backup
  // and ELF core header segments, plus the Reserved ranges of /proc/iomem (load_crashdump_segments).
  let map: E820Range[] = [
    { addr: backupSrc.start, size: backupSrc.size, type: E820_TYPE_RAM },
    { addr: region.start, size: region.end - region.start, type: E820_TYPE_RAM },
  ];
  map = deleteFromMap(map, backupAt, backupMem);
  map = deleteFromMap(map, elfcorehdr, hdrMem);
  for (const r of reserved) map.push({ addr: r.start, size: r.end - r.start + 1n, type: E820_TYPE_RESERVED });
  map.sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
  if (map.length > E820_MAX_ENTRIES_ZEROPAGE) throw new UsageError(`the capture kernel's memory map has ${map.length} ranges, more than the zero page holds`);

  const zp = boot_params.zero();
  zp.boot_flag = BOOT_FLAG_MAGIC;
  zp.header = SETUP_HEADER_MAGIC;
  zp.version = BOOT_PROTOCOL_VERSION;
  zp.e820_entries = map.length;
  zp.e820_table = Array.from({ length: E820_MAX_ENTRIES_ZEROPAGE }, (_, i) => (i < map.length ? { addr: map[i].addr, size: map[i].size, type: map[i].type } : e820_entry.zero()));
  const cmdPtr = zeroPageAt + PAGE_SIZE_N;
  zp.cmd_line_ptr = Number(cmdPtr & 0xffffffffn);
  zp.ext_cmd_line_ptr = Number(cmdPtr >> 32n);
  if (initrd) {
    zp.ramdisk_image = Number(initrdAt & 0xffffffffn);
    zp.ext_ramdisk_image = Number(initrdAt >> 32n);
    zp.ramdisk_size = initrd.length;
  }
  const zeroPage = new Uint8Array(Number(zeroPageMem));
  boot_params.encode(zp, viewOf(zeroPage), 0);
  zeroPage.set(Buffer.from(fullCmdline, 'latin1'), PAGE_SIZE);

  const purg = sim_purgatory.toBytes({
    magic: SIM_PURGATORY_MAGIC, entry: loadAddr, zero_page: zeroPageAt,
    backup_src_start: backupSrc.start, backup_src_size: backupSrc.size, backup_start: backupAt,
  });

  const spec: CrashLoadSpec = {
    segments: [
      ...kernelSegs,
      { mem: backupAt, bytes: new Uint8Array(0), memsz: backupMem },
      { mem: elfcorehdr, bytes: hdr, memsz: hdrMem },
      { mem: purgatoryAt, bytes: purg, memsz: PAGE_SIZE_N },
      { mem: zeroPageAt, bytes: zeroPage, memsz: zeroPageMem },
      ...(initrd ? [{ mem: initrdAt, bytes: initrd, memsz: pageUp(BigInt(initrd.length)) }] : []),
    ],
    entry: purgatoryAt,
    release: config.release,
    cmdline: fullCmdline,
  };
  return { spec, region, loadAddr, elfcorehdr, segments, freeAfterBoot: lowest - boot.earlyEnd, cmdline: fullCmdline };
}
