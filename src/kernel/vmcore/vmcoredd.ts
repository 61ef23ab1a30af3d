/**
 * Device dumps in a crash recovery kernel (fs/proc/vmcore.c,
 * CONFIG_PROC_VMCORE_DEVICE_DUMP, Linux 4.18+): vmcore_add_device_dump()
 * takes a driver's dump name, size and callback, allocates a buffer of
 * whole pages from this kernel's own memory (vmalloc_user), writes the
 * vmcoredd_header in front, lets the driver fill the rest, and adds the
 * dump to vmcoredd_list; when /proc/vmcore exists its headers, offsets and
 * size are rebuilt (vmcoredd_update_size). `novmcoredd` on the command line
 * disables it: every call fails with -EINVAL and "Device dump is disabled"
 * is logged once.
 */
import {
  CorruptDumpError, Elf64_Ehdr, Elf64_Phdr, hex, validDumpName, vmcoredd_header, vmcoreddHeaderBytes,
  viewOf, type VmcoreddHeader,
} from '../../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../../machine/index.js';
import { LOGLEVEL_ERR, LOGLEVEL_WARNING } from '../constants.js';
import { Kernel } from '../kernel.js';
import type { BuddyAllocator } from '../mm/buddy.js';
import { isVmallocAddr, vfree, vmallocUser } from '../mm/vmalloc.js';
import { printk } from '../printk.js';
import { list_head } from '../structs/list_head.js';
import { vmcore as vmcore_struct } from '../structs/vmcore.js';
import { vmcoredd_node } from '../structs/vmcoredd_node.js';
import { withDeviceDumps, type VmcoreLayout } from './vmcore.js';

/** errno values the API returns (include/uapi/asm-generic/errno-base.h). */
export const ENOMEM = 12;
export const EINVAL = 22;
export const ENODEV = 19;

/** Most dumps the list may hold (crash reads at most NR_DEVICE_DUMPS 64): bounds every walk. */
export const VMCOREDD_MAX_DUMPS = 64;

/** struct vmcoredd_data: what a driver passes. */
export interface VmcoreddData {
  dumpName: string;
  /** Bytes the driver will write. */
  size: number;
  /** Fills `buf` (zeroed, `size` bytes); returns 0, or a negative errno to drop the dump. */
  callback(buf: Uint8Array): number;
}

/** `novmcoredd` was on the command line: core_param(novmcoredd, vmcoredd_disabled, bool, 0). */
export function vmcoreddInit(kernel: Kernel, cmdline: string): void {
  const head = kernel.sym('vmcoredd_list').address;
  kernel.writeStruct(list_head, 'vmcoredd_list', { next: head, prev: head });
  kernel.writeBytes('vmcoredd_disabled', Uint8Array.of(/(^|\s)novmcoredd(=\S*)?(\s|$)/.test(cmdline) && !/(^|\s)novmcoredd=(0|n|N|off)(\s|$)/.test(cmdline) ? 1 : 0));
  kernel.writeBytes('vmcoredd_disabled_warned', Uint8Array.of(0));
  kernel.writeU64('vmalloc_next', 0n);
}

export function vmcoreddDisabled(kernel: Kernel): boolean {
  return kernel.readBytes('vmcoredd_disabled', 0, 1)[0] !== 0;
}

/** One dump on vmcoredd_list: its node's address, its buffer and size, and the header in front of its data. */
export interface VmcoreddDump {
  node: bigint;
  buf: bigint;
  /** Bytes of the buffer (a whole number of pages): the note's size in /proc/vmcore. */
  size: number;
  header: VmcoreddHeader;
  /** The dump name (dump_name of the header). */
  name: string;
}

/** The dumps on vmcoredd_list, in the order they were added (a bounded walk; a broken list is named). */
export function vmcoreddDumps(kernel: Kernel): VmcoreddDump[] {
  const head = kernel.sym('vmcoredd_list').address;
  const first = kernel.readStruct(list_head, 'vmcoredd_list').next;
  if (first === 0n) return [];
  const out: VmcoreddDump[] = [];
  for (let e = first; e !== head;) {
    if (out.length >= VMCOREDD_MAX_DUMPS) throw new CorruptDumpError(`vmcoredd_list holds more than ${VMCOREDD_MAX_DUMPS} dumps (a loop?)`, { struct: 'vmcoredd_node' });
    if (!isVmallocAddr(e)) throw new CorruptDumpError(`vmcoredd_list entry ${hex(e)} is not a vmalloc address`, { struct: 'vmcoredd_node', field: 'list' });
    const node = vmcoredd_node.decode(viewOf(kernel.mem.read('virt', e, vmcoredd_node.size)));
    if (node.size === 0 || node.size % PAGE_SIZE !== 0 || node.size > 1 << 30 || !isVmallocAddr(node.buf)) {
      throw new CorruptDumpError(`vmcoredd_node at ${hex(e)}: buffer ${hex(node.buf)} of ${node.size} bytes`, { struct: 'vmcoredd_node', field: 'size' });
    }
    const header = vmcoredd_header.decode(viewOf(kernel.mem.read('virt', node.buf, vmcoredd_header.size)));
    out.push({ node: e, buf: node.buf, size: node.size, header, name: header.dump_name });
    e = node.list.next;
  }
  return out;
}

/** `len` bytes of a dump's buffer at `offset` (the header is at 0, the driver's data at 64). */
export function readVmcoreddDump(kernel: Kernel, d: VmcoreddDump, offset: number, len: number): Uint8Array {
  if (offset < 0 || offset + len > d.size) throw new CorruptDumpError(`read of ${len} bytes at ${offset} is outside the ${d.size}-byte dump ${d.name}`, { struct: 'vmcoredd_node' });
  return kernel.mem.read('virt', d.buf + BigInt(offset), len);
}

/** The driver's data of a dump: everything after the 64-byte header (crash's "size", the crashdd file). */
export function vmcoreddData(kernel: Kernel, d: VmcoreddDump): Uint8Array {
  return readVmcoreddDump(kernel, d, vmcoredd_header.size, d.size - vmcoredd_header.size);
}

function listAddTail(kernel: Kernel, entry: bigint): void {
  const headVa = kernel.sym('vmcoredd_list').address;
  const head = kernel.readStruct(list_head, 'vmcoredd_list');
  const prev = head.prev;
  kernel.mem.write('virt', entry, list_head.toBytes({ next: headVa, prev }));
  if (prev === headVa) kernel.writeStruct(list_head, 'vmcoredd_list', { next: entry, prev: entry });
  else {
    kernel.mem.write('virt', prev, list_head.toBytes({ ...list_head.decode(viewOf(kernel.mem.read('virt', prev, list_head.size))), next: entry }));
    kernel.writeStruct(list_head, 'vmcoredd_list', { ...kernel.readStruct(list_head, 'vmcoredd_list'), prev: entry });
  }
}

/**
 * vmcoredd_update_size(): /proc/vmcore grows by `dumpSize` bytes of device
 * dumps between its headers and its notes: the PT_NOTE's size, every
 * PT_LOAD's offset, each struct vmcore's offset and vmcore_size are
 * rebuilt in this kernel's memory. A kernel without /proc/vmcore (a soft
 * boot's kernel 2) only counts the bytes.
 */
function vmcoreddUpdateSize(kernel: Kernel, dumpSize: number): void {
  const dd = kernel.readU64('vmcoredd_orig_sz') + BigInt(dumpSize);
  kernel.writeU64('vmcoredd_orig_sz', dd);
  const elfcorebuf = kernel.readU64('elfcorebuf');
  if (elfcorebuf === 0n) return;
  const bufSz = Number(kernel.readU64('elfcorebuf_sz'));
  const hdr = kernel.ram.read(Kernel.__pa(elfcorebuf), bufSz);
  const notesOrig = Number(kernel.readU64('elfnotes_orig_sz'));
  const notesPadded = Number(((BigInt(notesOrig) + PAGE_SIZE_N - 1n) / PAGE_SIZE_N) * PAGE_SIZE_N);
  const eh = Elf64_Ehdr.decode(viewOf(hdr));
  if (Elf64_Ehdr.size + eh.e_phnum * Elf64_Phdr.size > hdr.length) throw new CorruptDumpError(`elfcorebuf: ${eh.e_phnum} program headers run past its ${hdr.length} bytes`, { struct: 'Elf64_Ehdr', field: 'e_phnum' });
  // The chunks, in vmcore_list order: each moves down by the new bytes.
  const chunks: Array<{ at: bigint; v: ReturnType<typeof vmcore_struct.decode> }> = [];
  const head = kernel.sym('vmcore_list').address;
  for (let e = kernel.readStruct(list_head, 'vmcore_list').next; e !== head;) {
    if (chunks.length >= eh.e_phnum) throw new CorruptDumpError(`vmcore_list has more entries than the ${eh.e_phnum} program headers`, { struct: 'vmcore' });
    const v = kernel.readPhysStruct(vmcore_struct, Kernel.__pa(e));
    chunks.push({ at: e, v });
    e = v.list.next;
  }
  const layout: VmcoreLayout = {
    elfcorebuf: hdr, elfnotes: new Uint8Array(notesPadded), elfnotesOrigSize: notesOrig, vmcoreddSize: Number(dd) - dumpSize,
    chunks: chunks.map((c) => ({ paddr: c.v.paddr, size: c.v.size, offset: c.v.offset })), size: kernel.readU64('vmcore_size'),
  };
  const next = withDeviceDumps(layout, dumpSize);
  kernel.ram.write(Kernel.__pa(elfcorebuf), next.elfcorebuf);
  chunks.forEach((c, i) => kernel.writePhysStruct(vmcore_struct, Kernel.__pa(c.at), { ...c.v, offset: next.chunks[i].offset }));
  kernel.writeU64('elfnotes_sz', BigInt(notesPadded) + dd);
  kernel.writeU64('vmcore_size', next.size);
}

/**
 * vmcore_add_device_dump(): 0 when the dump was added, else a negative
 * errno (-EINVAL: disabled or a bad request; -ENOMEM: no memory for it,
 * logged as warn_alloc logs it; the callback's own error). A dump that
 * fails leaves nothing behind: its pages go back to the allocator.
 */
export function vmcoreAddDeviceDump(kernel: Kernel, buddy: BuddyAllocator, data: VmcoreddData): number {
  if (vmcoreddDisabled(kernel)) {
    // pr_err_once()
    if (kernel.readBytes('vmcoredd_disabled_warned', 0, 1)[0] === 0) {
      printk(kernel, 'Device dump is disabled', LOGLEVEL_ERR);
      kernel.writeBytes('vmcoredd_disabled_warned', Uint8Array.of(1));
    }
    return -EINVAL;
  }
  if (!validDumpName(data.dumpName) || !(data.size > 0) || !Number.isInteger(data.size)) return -EINVAL;
  if (vmcoreddDumps(kernel).length >= VMCOREDD_MAX_DUMPS) return -ENOMEM;
  const node = vmallocUser(kernel, buddy, vmcoredd_node.size);
  const dataSize = Math.ceil((vmcoredd_header.size + data.size) / PAGE_SIZE) * PAGE_SIZE;
  const buf = node === null ? null : vmallocUser(kernel, buddy, dataSize);
  if (node === null || buf === null) {
    printk(kernel, `swapper/0: vmalloc: allocation failure: ${node === null ? PAGE_SIZE : dataSize} bytes, mode:0xcc0(GFP_KERNEL), nodemask=(null)`, LOGLEVEL_WARNING);
    if (node !== null) vfree(kernel, buddy, node, vmcoredd_node.size);
    return -ENOMEM;
  }
  kernel.mem.write('virt', buf, vmcoreddHeaderBytes(data.dumpName, dataSize));
  const body = new Uint8Array(data.size);
  const ret = data.callback(body);
  if (ret !== 0) {
    vfree(kernel, buddy, buf, dataSize);
    vfree(kernel, buddy, node, vmcoredd_node.size);
    return ret < 0 ? ret : -EINVAL;
  }
  kernel.mem.write('virt', buf + BigInt(vmcoredd_header.size), body);
  kernel.mem.write('virt', node, vmcoredd_node.toBytes({ list: { next: 0n, prev: 0n }, buf, size: dataSize, _pad: 0 }));
  listAddTail(kernel, node);
  vmcoreddUpdateSize(kernel, dataSize);
  return 0;
}

/**
 * vmcore_free_device_dumps(): every dump's buffer and node go back to the
 * allocator and the list is empty again. A kernel without /proc/vmcore
 * (a soft boot's kernel 2) calls it once the dumps are safely written out.
 */
export function vmcoreFreeDeviceDumps(kernel: Kernel, buddy: BuddyAllocator): number {
  const dumps = vmcoreddDumps(kernel);
  for (const d of dumps) {
    vfree(kernel, buddy, d.buf, d.size);
    vfree(kernel, buddy, d.node, vmcoredd_node.size);
  }
  const head = kernel.sym('vmcoredd_list').address;
  kernel.writeStruct(list_head, 'vmcoredd_list', { next: head, prev: head });
  kernel.writeU64('vmcoredd_orig_sz', 0n);
  return dumps.length;
}

/** The driver name of a dump: drivers name their dumps "<driver>_<bus id>" (cxgb4's "%s_%s"). */
export function dumpDriverName(dumpName: string): string {
  const i = dumpName.lastIndexOf('_');
  return i > 0 ? dumpName.slice(0, i) : dumpName;
}

