/**
 * /proc/vmcore in the running kernel: vmcore_init() at the end of a
 * capture kernel's boot parses the ELF core header that elfcorehdr= points
 * at and keeps the result in its own memory (elfcorebuf, elfnotes_buf,
 * the vmcore_list of chunks), exactly where the kernel keeps them, so a
 * later command reads /proc/vmcore from nothing but this kernel's RAM.
 */
import { CorruptDumpError, DumpError, hex, viewOf } from '../../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../../machine/index.js';
import { ELFCORE_ADDR_ERR, ELFCORE_ADDR_MAX, LOGLEVEL_WARNING } from '../constants.js';
import { Kernel } from '../kernel.js';
import { memparse } from '../crashkernel.js';
import type { BuddyAllocator } from '../mm/buddy.js';
import { printk } from '../printk.js';
import { vmcore as vmcore_struct } from '../structs/vmcore.js';
import { list_head } from '../structs/list_head.js';
import { buildVmcoreLayout, readVmcore, VMCORE_MAX_PHNUM, type OldMemReader, type VmcoreDeviceDump, type VmcoreLayout } from './vmcore.js';
import { readVmcoreddDump, vmcoreddDumps, vmcoreddInit } from './vmcoredd.js';
import { Elf64_Ehdr, Elf64_Phdr } from '../../codec/index.js';

/** elfcorehdr=[size[KMG]@]offset[KMG] (kernel/crash_dump.c setup_elfcorehdr). */
export function parseElfcorehdrArg(cmdline: string): { addr: bigint; size: bigint } | { invalid: string } | null {
  let value: string | null = null;
  for (const w of cmdline.split(/\s+/)) if (w.startsWith('elfcorehdr=')) value = w.slice('elfcorehdr='.length);
  if (value === null) return null;
  const first = memparse(value, 0);
  if (first.end === 0) return { invalid: value };
  if (value[first.end] === '@') {
    const second = memparse(value, first.end + 1);
    if (second.end === first.end + 1 || second.end !== value.length) return { invalid: value };
    return { addr: second.value, size: first.value };
  }
  if (first.end !== value.length) return { invalid: value };
  return { addr: first.value, size: 0n };
}

/** is_kdump_kernel(): the kernel was booted with elfcorehdr=. */
export function isKdumpKernel(kernel: Kernel): boolean {
  const a = kernel.readU64('elfcorehdr_addr');
  return a !== ELFCORE_ADDR_MAX && a !== 0n;
}

function orderFor(bytes: number): number {
  let order = 0;
  while ((PAGE_SIZE << order) < bytes) order++;
  return order;
}

const oldMem = (kernel: Kernel): OldMemReader => (paddr, out) => kernel.ram.readInto(paddr, out);

/**
 * vmcore_init(): builds /proc/vmcore from elfcorehdr= (or the header
 * fadump's capture boot prepared) and stores it in this kernel's memory. A header that is missing or broken is logged as
 * the kernel logs it ("Kdump: vmcore not initialized"); the boot goes on
 * without /proc/vmcore.
 */
export function vmcoreInit(kernel: Kernel, buddy: BuddyAllocator, cmdline: string, fadumpElfcorehdr: { addr: bigint; size: bigint } | null = null): void {
  vmcoreddInit(kernel, cmdline);
  for (const v of ['elfcorebuf', 'elfcorebuf_sz', 'elfnotes_buf', 'elfnotes_sz', 'elfnotes_orig_sz', 'vmcoredd_orig_sz', 'vmcore_size']) kernel.writeU64(v, 0n);
  const head = kernel.sym('vmcore_list').address;
  kernel.writeStruct(list_head, 'vmcore_list', { next: head, prev: head });
  kernel.writeU64('elfcorehdr_size', 0n);
  // fadump's setup_fadump() sets elfcorehdr_addr itself when no elfcorehdr= was given.
  const arg = parseElfcorehdrArg(cmdline) ?? fadumpElfcorehdr;
  if (arg === null) {
    kernel.writeU64('elfcorehdr_addr', ELFCORE_ADDR_MAX);
    return;
  }
  if ('invalid' in arg) {
    kernel.writeU64('elfcorehdr_addr', ELFCORE_ADDR_MAX);
    printk(kernel, `elfcorehdr=${arg.invalid}: not an address; Kdump: vmcore not initialized`, LOGLEVEL_WARNING);
    return;
  }
  kernel.writeU64('elfcorehdr_addr', arg.addr);
  kernel.writeU64('elfcorehdr_size', arg.size);
  let layout: VmcoreLayout;
  try {
    if (arg.addr >= kernel.ram.size) throw new CorruptDumpError(`elfcorehdr ${hex(arg.addr)} is outside RAM`, { address: arg.addr });
    const limit = arg.size !== 0n ? arg.size : kernel.ram.size - arg.addr;
    layout = buildVmcoreLayout(oldMem(kernel), arg.addr, limit, kernel.ram.size);
  } catch (e) {
    if (!(e instanceof DumpError)) throw e;
    printk(kernel, `Warning: ${e.message}`, LOGLEVEL_WARNING);
    printk(kernel, 'Kdump: vmcore not initialized', LOGLEVEL_WARNING);
    return;
  }
  storeLayout(kernel, buddy, layout);
  // vmcore_init() consumes the header: is_kdump_kernel() stays true, the address is spent.
  kernel.writeU64('elfcorehdr_addr', ELFCORE_ADDR_ERR);
}

function allocBuffer(kernel: Kernel, buddy: BuddyAllocator, bytes: Uint8Array, what: string): bigint {
  const order = orderFor(bytes.length);
  const pfn = buddy.allocOrThrow(order, what);
  const padded = new Uint8Array(PAGE_SIZE << order);
  padded.set(bytes);
  kernel.ram.write(pfn * PAGE_SIZE_N, padded);
  return Kernel.__va(pfn * PAGE_SIZE_N);
}

function storeLayout(kernel: Kernel, buddy: BuddyAllocator, layout: VmcoreLayout): void {
  kernel.writeU64('elfcorebuf', allocBuffer(kernel, buddy, layout.elfcorebuf, '/proc/vmcore ELF headers'));
  kernel.writeU64('elfcorebuf_sz', BigInt(layout.elfcorebuf.length));
  kernel.writeU64('elfnotes_buf', allocBuffer(kernel, buddy, layout.elfnotes, '/proc/vmcore notes'));
  kernel.writeU64('elfnotes_sz', BigInt(layout.elfnotes.length));
  kernel.writeU64('elfnotes_orig_sz', BigInt(layout.elfnotesOrigSize));
  kernel.writeU64('vmcoredd_orig_sz', 0n);
  kernel.writeU64('vmcore_size', layout.size);
  // struct vmcore entries, packed into pages, linked into vmcore_list in order (list_add_tail).
  const head = kernel.sym('vmcore_list').address;
  const perPage = Math.floor(PAGE_SIZE / vmcore_struct.size);
  const addrs: bigint[] = [];
  let pageVa = 0n;
  layout.chunks.forEach((_, i) => {
    if (i % perPage === 0) pageVa = Kernel.__va(buddy.allocOrThrow(0, 'struct vmcore') * PAGE_SIZE_N);
    addrs.push(pageVa + BigInt((i % perPage) * vmcore_struct.size));
  });
  layout.chunks.forEach((c, i) => {
    const next = i + 1 < addrs.length ? addrs[i + 1] : head;
    const prev = i > 0 ? addrs[i - 1] : head;
    kernel.writePhysStruct(vmcore_struct, Kernel.__pa(addrs[i]), { list: { next, prev }, paddr: c.paddr, size: c.size, offset: c.offset });
  });
  kernel.writeStruct(list_head, 'vmcore_list', addrs.length ? { next: addrs[0], prev: addrs[addrs.length - 1] } : { next: head, prev: head });
}

function readBuffer(kernel: Kernel, ptrSym: string, sizeOrSym: string | bigint, max: number, sizeName = String(sizeOrSym)): Uint8Array {
  const ptr = kernel.readU64(ptrSym);
  const size = typeof sizeOrSym === 'bigint' ? sizeOrSym : kernel.readU64(sizeOrSym);
  const sizeSym = sizeName;
  if (size === 0n || size > BigInt(max) || size % PAGE_SIZE_N !== 0n) {
    throw new CorruptDumpError(`${sizeSym} ${size} is not a page multiple up to ${max}`, { field: sizeSym });
  }
  const phys = Kernel.__pa(ptr);
  if (phys < 0n || phys + size > kernel.ram.size) throw new CorruptDumpError(`${ptrSym} ${hex(ptr)} is outside RAM`, { field: ptrSym });
  return kernel.ram.read(phys, Number(size));
}

/**
 * /proc/vmcore as this kernel holds it, or null when it has none (not a
 * capture kernel, or vmcore_init() failed). The device dumps drivers added
 * lie between the headers and the notes (vmcoredd_orig_sz bytes); their
 * sizes must add up to it. Every walk is bounded by the program header
 * count or the dump limit.
 */
export function procVmcore(kernel: Kernel): VmcoreLayout | null {
  if (!isKdumpKernel(kernel) || kernel.readU64('elfcorebuf') === 0n) return null;
  const maxHdr = Number(((BigInt(Elf64_Ehdr.size + VMCORE_MAX_PHNUM * Elf64_Phdr.size) + PAGE_SIZE_N - 1n) / PAGE_SIZE_N) * PAGE_SIZE_N);
  const elfcorebuf = readBuffer(kernel, 'elfcorebuf', 'elfcorebuf_sz', maxHdr);
  const dd = kernel.readU64('vmcoredd_orig_sz');
  const dumps = vmcoreddDumps(kernel);
  const listed = dumps.reduce((n, d) => n + BigInt(d.size), 0n);
  if (listed !== dd) throw new CorruptDumpError(`vmcoredd_orig_sz ${dd} is not the ${listed} bytes of the ${dumps.length} device dumps listed`, { field: 'vmcoredd_orig_sz' });
  const notesSz = kernel.readU64('elfnotes_sz');
  if (notesSz < dd) throw new CorruptDumpError(`elfnotes_sz ${notesSz} is smaller than the device dumps it holds (${dd})`, { field: 'elfnotes_sz' });
  const elfnotes = readBuffer(kernel, 'elfnotes_buf', notesSz - dd, 1 << 24, 'elfnotes_sz');
  const notesOrig = kernel.readU64('elfnotes_orig_sz');
  if (notesOrig > BigInt(elfnotes.length)) throw new CorruptDumpError(`elfnotes_orig_sz ${notesOrig} exceeds elfnotes_sz`, { field: 'elfnotes_orig_sz' });
  const phnum = Elf64_Ehdr.decode(viewOf(elfcorebuf)).e_phnum;
  const head = kernel.sym('vmcore_list').address;
  const chunks: VmcoreLayout['chunks'] = [];
  let e = kernel.readStruct(list_head, 'vmcore_list').next;
  while (e !== head) {
    if (chunks.length >= phnum) throw new CorruptDumpError(`vmcore_list has more entries than the ${phnum} program headers`, { struct: 'vmcore' });
    const phys = Kernel.__pa(e);
    if (phys < 0n || phys + BigInt(vmcore_struct.size) > kernel.ram.size) throw new CorruptDumpError(`vmcore_list entry ${hex(e)} is outside RAM`, { struct: 'vmcore' });
    const v = kernel.readPhysStruct(vmcore_struct, phys);
    chunks.push({ paddr: v.paddr, size: v.size, offset: v.offset });
    e = v.list.next;
  }
  return { elfcorebuf, elfnotes, elfnotesOrigSize: Number(notesOrig), vmcoreddSize: Number(dd), chunks, size: kernel.readU64('vmcore_size') };
}

/** The device dumps of /proc/vmcore, as read_vmcore() copies them (vmcoredd_copy_dumps). */
export function procVmcoreDeviceDumps(kernel: Kernel): VmcoreDeviceDump[] {
  return vmcoreddDumps(kernel).map((d) => ({ size: d.size, read: (offset, out) => out.set(readVmcoreddDump(kernel, d, offset, out.length)) }));
}

/**
 * vmcore_cleanup(): /proc/vmcore goes away and its memory (the headers,
 * the notes, the struct vmcore pages) returns to the allocator. Used by
 * fadump's release_mem; a no-op when there is no /proc/vmcore.
 */
export function vmcoreCleanup(kernel: Kernel, buddy: BuddyAllocator): void {
  const layout = procVmcore(kernel);
  if (!layout) return;
  const entryPages = new Set<bigint>();
  const head = kernel.sym('vmcore_list').address;
  let e = kernel.readStruct(list_head, 'vmcore_list').next;
  // procVmcore() walked the same list within its program header bound; the pages of its entries are freed once each.
  for (let i = 0; e !== head && i < layout.chunks.length; i++) {
    entryPages.add(Kernel.__pa(e) / PAGE_SIZE_N);
    e = kernel.readPhysStruct(vmcore_struct, Kernel.__pa(e)).list.next;
  }
  for (const pfn of entryPages) buddy.free(pfn, 0);
  buddy.free(Kernel.__pa(kernel.readU64('elfcorebuf')) / PAGE_SIZE_N, orderFor(layout.elfcorebuf.length));
  buddy.free(Kernel.__pa(kernel.readU64('elfnotes_buf')) / PAGE_SIZE_N, orderFor(layout.elfnotes.length));
  for (const v of ['elfcorebuf', 'elfcorebuf_sz', 'elfnotes_buf', 'elfnotes_sz', 'elfnotes_orig_sz', 'vmcoredd_orig_sz', 'vmcore_size']) kernel.writeU64(v, 0n);
  kernel.writeStruct(list_head, 'vmcore_list', { next: head, prev: head });
}

/** read_vmcore(): `out.length` bytes of /proc/vmcore at `pos`. */
export function readProcVmcore(kernel: Kernel, layout: VmcoreLayout, pos: bigint, out: Uint8Array): void {
  readVmcore(layout, oldMem(kernel), pos, out, layout.vmcoreddSize ? procVmcoreDeviceDumps(kernel) : []);
}
