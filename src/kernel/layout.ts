import { InternalError } from '../codec/index.js';
import { PAGE_SIZE } from '../machine/index.js';
import {
  __START_KERNEL_map, COMMAND_LINE_SIZE, KERNEL_RELEASE, KERNEL_RELEASE_LOWMEM, LOAD_PHYSICAL_ADDR,
  LOWMEM_LIMIT, LOWMEM_PHYSICAL_START, NR_CPUS, VMCOREINFO_BYTES,
} from './constants.js';
import { kallsyms_entry, lkcd_kernel_header } from './structs/kernel_header.js';
import { uts_namespace } from './structs/new_utsname.js';
import { pt_regs } from './structs/pt_regs.js';
import { task_struct } from './structs/task_struct.js';
import { kmem_cache } from './structs/kmem_cache.js';
import { dump_config } from './structs/dump_config.js';
import { list_head } from './structs/list_head.js';
import { pid, pid_namespace } from './structs/pid.js';
import { pglist_data } from './structs/pglist_data.js';
import { ramoops_context } from './pstore/structs/ramoops_context.js';
import { pstore_state } from './pstore/structs/pstore_state.js';
import { devcd_state } from './pstore/structs/devcd.js';
import { e820_table } from './structs/e820.js';
import { resource } from './structs/resource.js';
import { CRASH_CORE_NOTE_BYTES, VMCOREINFO_NOTE_SIZE } from './structs/crash_notes.js';
import { fadump_mem_struct } from '../machine/rtas_fadump.js';
import { fw_dump } from './fadump/structs.js';

/** A kernel build configuration: what makes two builds differ. */
export interface KernelConfig {
  release: string;
  /** CONFIG_PHYSICAL_START: physical address of _text. */
  physicalStart: bigint;
}

export type SymbolType = 'T' | 't' | 'R' | 'r' | 'D' | 'd' | 'B' | 'b' | 'A';

export interface KernelSymbol {
  name: string;
  address: bigint;
  size: bigint;
  type: SymbolType;
}

export interface KernelSection { name: string; offset: number; size: number }

/** Where everything of one kernel build sits, relative to _text. */
export interface KernelLayout {
  config: KernelConfig;
  textVaddr: bigint;
  sections: { head: KernelSection; text: KernelSection; rodata: KernelSection; data: KernelSection; bss: KernelSection };
  /** Bytes of the loaded image, _text to _end. */
  imageSize: number;
  symbols: KernelSymbol[];
}

// Section sizes of the simulated build. Small enough for a 16 MiB machine.
const HEAD_SIZE = PAGE_SIZE;
const TEXT_SIZE = 0x180000 - HEAD_SIZE;
const RODATA_SIZE = 0x80000;
const DATA_SIZE = 0x10000;
/** CONFIG_LOG_BUF_SHIFT=17: a 128 KiB printk buffer. */
export const LOG_BUF_LEN = 1 << 17;

/** fs/proc/array.c task_state_array[]: the nine state names ps and drgn's task_state_to_char read. */
export const TASK_STATE_NAMES = [
  'R (running)', 'S (sleeping)', 'D (disk sleep)', 'T (stopped)', 't (tracing stop)', 'X (dead)', 'Z (zombie)',
  'P (parked)', 'I (idle)',
] as const;
/** Bytes of .rodata after linux_banner for task_state_array and the strings it points to. */
export const TASK_STATE_AREA = 512;
/**
 * The kernel's ELF notes (the .notes section: one NT_GNU_BUILD_ID note,
 * 12-byte header, "GNU\0", 20-byte SHA-1), kept in the last bytes of
 * .rodata, between __start_notes and __stop_notes.
 */
export const NOTES_AREA = 64;
export const BUILD_ID_NOTE_BYTES = 12 + 4 + 20;

/** The pages of the kernel's own page tables, in .bss order. */
export const PAGE_TABLE_SYMBOLS = ['init_top_pgt', 'level3_kernel_pgt', 'level2_kernel_pgt', 'level3_direct_map_pgt'] as const;

/** Functions the simulated kernel "has": their addresses appear in System.map, registers and stacks. */
export const TEXT_FUNCTIONS = [
  'startup_64', 'start_kernel', 'rest_init', 'kernel_init', 'cpu_startup_entry', 'do_idle', 'schedule',
  '__schedule', 'do_syscall_64', 'entry_SYSCALL_64', 'ksys_read', 'ksys_write', 'vfs_read', 'vfs_write',
  'generic_file_read_iter', 'filemap_fault', 'handle_mm_fault', '__alloc_pages_nodemask', '__free_pages',
  'kmem_cache_alloc', 'kfree', 'printk', 'vprintk_emit', 'panic', 'oops_enter', 'die', 'do_trap',
  'do_invalid_op', 'page_fault', 'no_context', '__handle_sysrq', 'sysrq_handle_crash', 'sysrq_handle_dump',
  'dump_execute', 'dump_overlay_sequencer', 'dump_compress_gzip', 'crash_kexec', 'machine_kexec',
  'relocate_kernel', 'sim_driver_ioctl', 'sim_driver_oops', 'worker_thread', 'kthread', 'ret_from_fork',
  'crash_fadump',
] as const;

interface DataVar { name: string; size: number; align: number }

function dataVars(): DataVar[] {
  return [
    { name: 'init_uts_ns', size: uts_namespace.size, align: 64 },
    { name: 'log_buf', size: 8, align: 8 },
    { name: 'log_buf_len', size: 4, align: 4 },
    { name: 'log_first_idx', size: 4, align: 4 },
    { name: 'log_next_idx', size: 4, align: 4 },
    { name: 'clear_idx', size: 4, align: 4 },
    { name: 'log_first_seq', size: 8, align: 8 },
    { name: 'log_next_seq', size: 8, align: 8 },
    { name: 'clear_seq', size: 8, align: 8 },
    { name: 'mem_map', size: 8, align: 8 },
    { name: 'max_pfn', size: 8, align: 8 },
    { name: '_totalram_pages', size: 8, align: 8 },
    { name: 'contig_page_data', size: pglist_data.size, align: 64 },
    { name: 'vmcoreinfo_data', size: VMCOREINFO_BYTES, align: 64 },
    { name: 'vmcoreinfo_size', size: 8, align: 8 },
    { name: 'boot_command_line', size: COMMAND_LINE_SIZE, align: 64 },
    { name: 'saved_command_line', size: 8, align: 8 },
    { name: 'init_task', size: task_struct.size, align: 64 },
    { name: 'nr_threads', size: 4, align: 4 },
    { name: 'last_pid', size: 4, align: 4 },
    { name: 'task_struct_cachep', size: kmem_cache.size, align: 64 },
    { name: 'sim_clock_ns', size: 8, align: 8 },
    { name: 'sim_boot_time', size: 8, align: 8 },
    { name: 'sim_workload', size: 64, align: 64 },
    { name: 'dump_config', size: dump_config.size, align: 64 },
    { name: 'kexec_image', size: 8, align: 8 },
    { name: 'crashdump_addr', size: 8, align: 8 },
    { name: 'panic_cpu', size: 4, align: 4 },
    { name: 'crash_regs', size: pt_regs.size, align: 64 },
    { name: 'jiffies', size: 8, align: 64 },
    { name: 'init_pid_ns', size: pid_namespace.size, align: 64 },
    { name: 'init_struct_pid', size: pid.size, align: 64 },
    { name: 'pid_cachep', size: kmem_cache.size, align: 64 },
    { name: 'radix_tree_node_cachep', size: kmem_cache.size, align: 64 },
    { name: 'modules', size: list_head.size, align: 8 },
    // pstore/ramoops and the device-coredump frontend (src/kernel/pstore).
    { name: 'oops_cxt', size: ramoops_context.size, align: 64 },
    { name: 'pstore_state', size: pstore_state.size, align: 64 },
    { name: 'devcd_state', size: devcd_state.size, align: 64 },
    // Memory map, relocation and kdump (arch/x86/kernel/e820.c, head64.c, kernel/crash_core.c, fs/proc/vmcore.c).
    { name: 'e820_table', size: e820_table.size, align: 8 },
    { name: 'phys_base', size: 8, align: 8 },
    { name: 'min_low_pfn', size: 8, align: 8 },
    { name: 'initrd_start', size: 8, align: 8 },
    { name: 'initrd_end', size: 8, align: 8 },
    { name: 'crashk_res', size: resource.size, align: 64 },
    { name: 'kexec_crash_image', size: 8, align: 8 },
    { name: 'crash_notes', size: 8, align: 8 },
    // The per-CPU note_buf_t that crash_notes points to (alloc_percpu in the kernel).
    { name: 'crash_notes_buf', size: CRASH_CORE_NOTE_BYTES * NR_CPUS, align: 64 },
    { name: 'vmcoreinfo_note', size: VMCOREINFO_NOTE_SIZE, align: 64 },
    { name: 'elfcorehdr_addr', size: 8, align: 8 },
    { name: 'elfcorehdr_size', size: 8, align: 8 },
    { name: 'elfcorebuf', size: 8, align: 8 },
    { name: 'elfcorebuf_sz', size: 8, align: 8 },
    { name: 'elfnotes_buf', size: 8, align: 8 },
    { name: 'elfnotes_sz', size: 8, align: 8 },
    { name: 'elfnotes_orig_sz', size: 8, align: 8 },
    { name: 'vmcoredd_orig_sz', size: 8, align: 8 },
    { name: 'vmcore_size', size: 8, align: 8 },
    { name: 'vmcore_list', size: list_head.size, align: 16 },
    // Firmware-assisted dump (arch/powerpc/kernel/fadump.c): fw_dump, the structure registered
    // with the firmware (fdm), a copy of the firmware's rtas/ibm,kernel-dump (fdm_active), crashing_cpu.
    { name: 'fw_dump', size: fw_dump.size, align: 8 },
    { name: 'fdm', size: fadump_mem_struct.size, align: 8 },
    { name: 'fdm_active', size: fadump_mem_struct.size, align: 8 },
    { name: 'crashing_cpu', size: 4, align: 4 },
    // Device dumps in a crash recovery kernel (fs/proc/vmcore.c) and the vmalloc area's next address (ours).
    { name: 'vmcoredd_list', size: list_head.size, align: 16 },
    { name: 'vmcoredd_disabled', size: 1, align: 1 },
    { name: 'vmcoredd_disabled_warned', size: 1, align: 1 },
    { name: 'vmalloc_next', size: 8, align: 8 },
  ];
}

/**
 * Symbols that are another name for a variable: on x86_64 `jiffies` is the
 * variable (arch/x86/kernel/time.c) and the linker script says
 * `jiffies_64 = jiffies;` (arch/x86/kernel/vmlinux.lds.S).
 */
export const DATA_ALIASES: ReadonlyArray<readonly [alias: string, target: string]> = [['jiffies_64', 'jiffies']];

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Stable pseudo-random offset of a function inside .text (no PRNG state: a hash of its name). */
function functionOffset(name: string, index: number, count: number): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  const slot = Math.floor(TEXT_SIZE / count);
  return HEAD_SIZE + index * slot + (h % Math.max(1, slot - 0x400)) - ((h % Math.max(1, slot - 0x400)) % 16);
}

/** The build configuration for a machine with `ramBytes` of RAM. */
export function configForRam(ramBytes: bigint): KernelConfig {
  return ramBytes < LOWMEM_LIMIT
    ? { release: KERNEL_RELEASE_LOWMEM, physicalStart: LOWMEM_PHYSICAL_START }
    : { release: KERNEL_RELEASE, physicalStart: LOAD_PHYSICAL_ADDR };
}

/** Computes every section and symbol of a build: a pure function of its configuration. */
export function kernelLayout(config: KernelConfig): KernelLayout {
  const textVaddr = __START_KERNEL_map + config.physicalStart;
  const head: KernelSection = { name: '.head', offset: 0, size: HEAD_SIZE };
  const text: KernelSection = { name: '.text', offset: HEAD_SIZE, size: TEXT_SIZE };
  const rodata: KernelSection = { name: '.rodata', offset: text.offset + TEXT_SIZE, size: RODATA_SIZE };
  const data: KernelSection = { name: '.data', offset: rodata.offset + RODATA_SIZE, size: DATA_SIZE };
  const bssStart = data.offset + DATA_SIZE;
  const symbols: KernelSymbol[] = [];
  const add = (name: string, offset: number, size: number, type: SymbolType): void => {
    symbols.push({ name, address: textVaddr + BigInt(offset), size: BigInt(size), type });
  };
  add('_text', 0, 0, 'T');
  add('lkcd_kernel_header', 0, lkcd_kernel_header.size, 'T');
  add('_stext', text.offset, 0, 'T');
  TEXT_FUNCTIONS.forEach((fn, i) => add(fn, functionOffset(fn, i, TEXT_FUNCTIONS.length), 0x100, 'T'));
  add('_etext', text.offset + TEXT_SIZE, 0, 'T');
  add('__start_rodata', rodata.offset, 0, 'R');
  // kallsyms must hold every symbol, itself included: size it for a generous count.
  const kallsymsCapacity = 256;
  add('kallsyms_table', rodata.offset, kallsyms_entry.size * kallsymsCapacity, 'R');
  const bannerOff = rodata.offset + kallsyms_entry.size * kallsymsCapacity;
  add('linux_banner', bannerOff, 256, 'R');
  add('task_state_array', bannerOff + 256, 8 * TASK_STATE_NAMES.length, 'R');
  const notesOff = rodata.offset + RODATA_SIZE - NOTES_AREA;
  if (bannerOff + 256 + TASK_STATE_AREA > notesOff) throw new InternalError('.rodata too small for the notes');
  add('__start_notes', notesOff, 0, 'R');
  add('__stop_notes', notesOff + BUILD_ID_NOTE_BYTES, 0, 'R');
  add('__end_rodata', rodata.offset + RODATA_SIZE, 0, 'R');
  add('_sdata', data.offset, 0, 'D');
  let off = data.offset;
  for (const v of dataVars()) {
    off = alignUp(off, v.align);
    add(v.name, off, v.size, 'D');
    for (const [alias, target] of DATA_ALIASES) if (target === v.name) add(alias, off, v.size, 'D');
    off += v.size;
  }
  if (off > data.offset + DATA_SIZE) throw new InternalError(`.data overflows by ${off - data.offset - DATA_SIZE} bytes`);
  add('_edata', data.offset + DATA_SIZE, 0, 'D');
  add('__bss_start', bssStart, 0, 'B');
  let b = bssStart;
  for (const pt of PAGE_TABLE_SYMBOLS) {
    add(pt, b, PAGE_SIZE, 'B');
    b += PAGE_SIZE;
  }
  add('__log_buf', b, LOG_BUF_LEN, 'B');
  b += LOG_BUF_LEN;
  add('__bss_stop', b, 0, 'B');
  const imageSize = alignUp(b, PAGE_SIZE);
  add('_end', imageSize, 0, 'B');
  if (symbols.length > kallsymsCapacity) throw new InternalError('kallsyms table too small');
  symbols.sort((a, z) => (a.address < z.address ? -1 : a.address > z.address ? 1 : 0));
  return {
    config, textVaddr, imageSize, symbols,
    sections: { head, text, rodata, data, bss: { name: '.bss', offset: bssStart, size: imageSize - bssStart } },
  };
}

/** Physical address of a kernel-image virtual address (__pa_symbol; phys_base is 0). */
export function __pa_symbol(vaddr: bigint): bigint {
  return vaddr - __START_KERNEL_map;
}
