import type { StructLayout } from '../codec/index.js';
import { dump_config } from './structs/dump_config.js';
import { free_area } from './structs/free_area.js';
import { kallsyms_entry, lkcd_kernel_header } from './structs/kernel_header.js';
import { kmem_cache } from './structs/kmem_cache.js';
import { list_head } from './structs/list_head.js';
import { new_utsname, uts_namespace } from './structs/new_utsname.js';
import { page } from './structs/page.js';
import { printk_log } from './structs/printk_log.js';
import { pt_regs } from './structs/pt_regs.js';
import { task_struct } from './structs/task_struct.js';
import { hlist_head, hlist_node } from './structs/hlist.js';
import { callback_head, pid, pid_namespace, upid, wait_queue_head } from './structs/pid.js';
import { idr, xa_node, xarray } from './structs/xarray.js';
import { pglist_data } from './structs/pglist_data.js';
import { kexec_segment, kimage } from './structs/kimage.js';
import { sim_workload } from './structs/sim_workload.js';
import { e820_entry, e820_table } from './structs/e820.js';
import { resource } from './structs/resource.js';
import { ramoops_context } from './pstore/structs/ramoops_context.js';
import { persistent_ram_buffer } from './pstore/structs/persistent_ram_buffer.js';
import { pstore_state } from './pstore/structs/pstore_state.js';
import { devcd_region, devcd_device, devcd_registry, devcd_state } from './pstore/structs/devcd.js';
import { fadump_mem_struct, fadump_reg_entry, fadump_reg_save_area_header, fadump_section, fadump_section_header } from '../machine/rtas_fadump.js';
import { cpumask, fadump_crash_info_header, fw_dump } from './fadump/structs.js';
import { vmcoredd_node } from './structs/vmcoredd_node.js';

export const KERNTYPES_FORMAT = 'lkcd-softboot-kerntypes';
export const KERNTYPES_VERSION = 1;

/** Every structure the simulated kernel lays out in RAM. */
export const KERNEL_STRUCTS: readonly StructLayout[] = [
  list_head, page, new_utsname, uts_namespace, printk_log, pt_regs, task_struct, free_area,
  kmem_cache, dump_config, lkcd_kernel_header, kallsyms_entry,
  hlist_head, hlist_node, callback_head, wait_queue_head, upid, pid, xarray, idr, xa_node, pid_namespace,
  pglist_data, kexec_segment, kimage, sim_workload,
  e820_entry, e820_table, resource,
  ramoops_context, persistent_ram_buffer, pstore_state, devcd_region, devcd_device, devcd_registry, devcd_state,
  fadump_section, fadump_section_header, fadump_mem_struct, fadump_reg_save_area_header, fadump_reg_entry,
  cpumask, fadump_crash_info_header, fw_dump,
  vmcoredd_node,
];

/**
 * Kerntypes: the type layouts of a build, in our own JSON format (LKCD's
 * Kerntypes was a stabs/DWARF object; ours says the same thing readably):
 * { format, version, release, structs: [{ name, size, fields: [{ name, offset, size, type, bitfields? }] }] },
 * `type` being the C type (`struct task_struct *`, `atomic_t`, `char[16]`)
 * and `bitfields` the C bitfields a byte holds ([{ name, bits }], low bits first).
 */
export function kerntypesJson(release: string, extra: readonly StructLayout[] = []): string {
  const structs = [...KERNEL_STRUCTS, ...extra].map((s) => ({
    name: s.name,
    size: s.size,
    fields: s.fields.map((f) => ({
      name: f.name, offset: f.offset, size: f.size, type: f.ctype, ...(f.bitfields ? { bitfields: f.bitfields } : {}),
    })),
  }));
  return JSON.stringify({ format: KERNTYPES_FORMAT, version: KERNTYPES_VERSION, release, structs }, null, 1) + '\n';
}
