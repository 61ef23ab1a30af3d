import { CorruptDumpError, encodeElfNote } from '../codec/index.js';
import { PAGE_SIZE } from '../machine/index.js';
import {
  PAGE_BUDDY_MAPCOUNT_VALUE, PAGE_OFFLINE_MAPCOUNT_VALUE, PG_hwpoison, PG_head, PG_lru, PG_private,
  PG_slab, PG_swapbacked, PG_swapcache, VMCOREINFO_BYTES, MAX_ORDER,
} from './constants.js';
import type { Kernel } from './kernel.js';
import { kernelBuildId } from './build_id.js';
import { free_area } from './structs/free_area.js';
import { uts_namespace } from './structs/new_utsname.js';
import { page } from './structs/page.js';
import { printk_log } from './structs/printk_log.js';
import { list_head } from './structs/list_head.js';
import { VMCOREINFO_NOTE_NAME, VMCOREINFO_NOTE_SIZE } from './structs/crash_notes.js';

/** n_type of the VMCOREINFO note (the kernel writes 0). */
const VMCOREINFO_NOTE_TYPE = 0;

/**
 * The VMCOREINFO text a 5.4 kernel exports (kernel/crash_core.c and
 * arch/x86/kernel/machine_kexec_64.c), with the keys vmcore-dmesg,
 * makedumpfile and crash read (shared/reference/vmcore-real-clients.md).
 */
export function vmcoreinfoText(kernel: Kernel): string {
  const sym = (n: string): string => kernel.sym(n).address.toString(16);
  const buildId = kernelBuildId(kernel);
  const lines: Array<[string, string | number]> = [
    ['OSRELEASE', kernel.release],
    // BUILD-ID= as kernels since 5.9 write it (kernel/crash_core.c VMCOREINFO_BUILD_ID), so a
    // vmlinux can be matched to a dump; a 5.4 kernel did not have it.
    ...(buildId ? [['BUILD-ID', buildId] as [string, string]] : []),
    ['PAGESIZE', PAGE_SIZE],
    ['SYMBOL(init_uts_ns)', sym('init_uts_ns')],
    ['OFFSET(uts_namespace.name)', uts_namespace.offsetOf.name],
    ['SYMBOL(_stext)', sym('_stext')],
    ['SYMBOL(swapper_pg_dir)', sym('init_top_pgt')],
    ['SYMBOL(init_top_pgt)', sym('init_top_pgt')],
    ['SYMBOL(mem_map)', sym('mem_map')],
    ['SYMBOL(contig_page_data)', sym('contig_page_data')],
    ['SYMBOL(log_buf)', sym('log_buf')],
    ['SYMBOL(log_buf_len)', sym('log_buf_len')],
    ['SYMBOL(log_first_idx)', sym('log_first_idx')],
    ['SYMBOL(clear_idx)', sym('clear_idx')],
    ['SYMBOL(log_next_idx)', sym('log_next_idx')],
    ['SIZE(printk_log)', printk_log.size],
    ['OFFSET(printk_log.ts_nsec)', printk_log.offsetOf.ts_nsec],
    ['OFFSET(printk_log.len)', printk_log.offsetOf.len],
    ['OFFSET(printk_log.text_len)', printk_log.offsetOf.text_len],
    ['OFFSET(printk_log.dict_len)', printk_log.offsetOf.dict_len],
    ['SIZE(page)', page.size],
    ['SIZE(free_area)', free_area.size],
    ['SIZE(list_head)', list_head.size],
    ['OFFSET(page.flags)', page.offsetOf.flags],
    ['OFFSET(page._refcount)', page.offsetOf._refcount],
    ['OFFSET(page.mapping)', page.offsetOf.mapping],
    ['OFFSET(page.lru)', page.offsetOf.lru],
    ['OFFSET(page._mapcount)', page.offsetOf._mapcount],
    ['OFFSET(page.private)', page.offsetOf.private],
    ['OFFSET(free_area.free_list)', free_area.offsetOf.free_list],
    ['OFFSET(list_head.next)', list_head.offsetOf.next],
    ['OFFSET(list_head.prev)', list_head.offsetOf.prev],
    ['LENGTH(free_area.free_list)', 1],
    ['LENGTH(zone.free_area)', MAX_ORDER],
    ['NUMBER(PG_lru)', PG_lru],
    ['NUMBER(PG_private)', PG_private],
    ['NUMBER(PG_swapcache)', PG_swapcache],
    ['NUMBER(PG_swapbacked)', PG_swapbacked],
    ['NUMBER(PG_slab)', PG_slab],
    ['NUMBER(PG_head_mask)', 1 << PG_head],
    ['NUMBER(PG_hwpoison)', PG_hwpoison],
    ['NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)', PAGE_BUDDY_MAPCOUNT_VALUE],
    ['NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)', PAGE_OFFLINE_MAPCOUNT_VALUE],
    ['NUMBER(phys_base)', kernel.physBase.toString()],
    ['SYMBOL(init_task)', sym('init_task')],
    ['NUMBER(KERNEL_IMAGE_SIZE)', 1 << 30],
    ['NUMBER(pgtable_l5_enabled)', 0],
    ['NUMBER(MAX_PHYSMEM_BITS)', 46],
    ['KERNELOFFSET', 0],
  ];
  return lines.map(([k, v]) => `${k}=${v}\n`).join('');
}

/** Writes the text into vmcoreinfo_data/vmcoreinfo_size, as crash_save_vmcoreinfo_init() does. */
export function storeVmcoreinfo(kernel: Kernel, text: string): void {
  const bytes = Buffer.from(text, 'latin1');
  if (bytes.length > VMCOREINFO_BYTES) throw new CorruptDumpError(`VMCOREINFO text of ${bytes.length} bytes exceeds VMCOREINFO_BYTES`);
  const buf = Buffer.alloc(VMCOREINFO_BYTES);
  buf.set(bytes);
  kernel.writeBytes('vmcoreinfo_data', buf);
  kernel.writeU64('vmcoreinfo_size', BigInt(bytes.length));
  updateVmcoreinfoNote(kernel, bytes);
}

/**
 * update_vmcoreinfo_note(): the VMCOREINFO text as an ELF note, followed by
 * the empty final note, in vmcoreinfo_note; this is what kexec-tools points
 * the ELF core header's VMCOREINFO PT_NOTE at (/sys/kernel/vmcoreinfo).
 */
function updateVmcoreinfoNote(kernel: Kernel, text: Uint8Array): void {
  const buf = Buffer.alloc(VMCOREINFO_NOTE_SIZE);
  buf.set(encodeElfNote(VMCOREINFO_NOTE_NAME, VMCOREINFO_NOTE_TYPE, text));
  kernel.writeBytes('vmcoreinfo_note', buf);
}

/** /sys/kernel/vmcoreinfo: physical address and size of the note, "%pa %x". */
export function vmcoreinfoNoteLocation(kernel: Kernel): { paddr: bigint; size: number } {
  return { paddr: kernel.symPhys('vmcoreinfo_note'), size: VMCOREINFO_NOTE_SIZE };
}

/** Appends a line (e.g. CRASHTIME at panic), as vmcoreinfo_append_str() does. */
export function appendVmcoreinfo(kernel: Kernel, line: string): void {
  storeVmcoreinfo(kernel, readVmcoreinfo(kernel) + line);
}

export function readVmcoreinfo(kernel: Kernel): string {
  const size = kernel.readU64('vmcoreinfo_size');
  if (size > BigInt(VMCOREINFO_BYTES)) {
    throw new CorruptDumpError(`vmcoreinfo_size ${size} exceeds VMCOREINFO_BYTES`, { field: 'vmcoreinfo_size' });
  }
  return kernel.readBytes('vmcoreinfo_data', 0, Number(size)).toString('latin1');
}
