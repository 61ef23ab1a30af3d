/**
 * The ELF core header kexec-tools builds for a capture kernel
 * (kexec/crashdump-elf.c crash_create_elf64_headers, x86_64): one PT_NOTE
 * per CPU at its crash_notes buffer, one for VMCOREINFO, a PT_LOAD for the
 * kernel-text mapping, then one PT_LOAD per System RAM range with the
 * crashkernel region cut out; the range the backup copies points (by
 * p_offset) at the backup segment. p_offset holds physical addresses: the
 * capture kernel's /proc/vmcore re-bases them.
 */
import {
  Elf64_Ehdr, Elf64_Phdr, encodeCoreEhdr, PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE, viewOf, type Elf64Phdr,
} from '../src/codec/index.js';

/** ELF_CORE_HEADER_ALIGN: the header is 1 KiB aligned because elfcorehdr= is given in KiB. */
export const ELF_CORE_HEADER_ALIGN = 1024;

/** An inclusive physical range, as kexec-tools' struct memory_range keeps it. */
export interface MemoryRange { start: bigint; end: bigint }

export interface CrashElfInfo {
  /** PT_NOTEs: each CPU's crash_notes buffer, then the VMCOREINFO note. */
  notes: Array<{ paddr: bigint; size: bigint }>;
  /** The kernel-text mapping: _text's virtual and physical address and the image's size. */
  kernelText: { vaddr: bigint; paddr: bigint; size: bigint };
  /** System RAM ranges to dump, the crashkernel region already excluded. */
  ram: MemoryRange[];
  /** PAGE_OFFSET: RAM is described at its direct-map address. */
  pageOffset: bigint;
  /** The backup source range and where purgatory copies it. */
  backup: { srcStart: bigint; srcSize: bigint; dest: bigint };
}

/** Builds the header, its size rounded up to ELF_CORE_HEADER_ALIGN. */
export function crashCreateElf64Headers(info: CrashElfInfo): Uint8Array {
  const phdrs: Elf64Phdr[] = [];
  for (const n of info.notes) {
    phdrs.push({ p_type: PT_NOTE, p_flags: 0, p_offset: n.paddr, p_vaddr: 0n, p_paddr: n.paddr, p_filesz: n.size, p_memsz: n.size, p_align: 0n });
  }
  const t = info.kernelText;
  phdrs.push({ p_type: PT_LOAD, p_flags: PF_R | PF_W | PF_X, p_offset: t.paddr, p_vaddr: t.vaddr, p_paddr: t.paddr, p_filesz: t.size, p_memsz: t.size, p_align: 0n });
  for (const r of info.ram) {
    const size = r.end - r.start + 1n;
    const isBackup = r.start === info.backup.srcStart && size === info.backup.srcSize;
    phdrs.push({
      p_type: PT_LOAD, p_flags: PF_R | PF_W | PF_X, p_offset: isBackup ? info.backup.dest : r.start,
      p_vaddr: info.pageOffset + r.start, p_paddr: r.start, p_filesz: size, p_memsz: size, p_align: 0n,
    });
  }
  const raw = Elf64_Ehdr.size + phdrs.length * Elf64_Phdr.size;
  const out = new Uint8Array(Math.ceil(raw / ELF_CORE_HEADER_ALIGN) * ELF_CORE_HEADER_ALIGN);
  const view = viewOf(out);
  encodeCoreEhdr(view, phdrs.length);
  phdrs.forEach((p, i) => Elf64_Phdr.encode(p, view, Elf64_Ehdr.size + i * Elf64_Phdr.size));
  return out;
}

/** exclude_region(): removes [start, end] (inclusive) from sorted ranges, splitting one if needed. */
export function excludeRegion(ranges: readonly MemoryRange[], start: bigint, end: bigint): MemoryRange[] {
  const out: MemoryRange[] = [];
  for (const r of ranges) {
    if (end < r.start || start > r.end) { out.push(r); continue; }
    if (r.start < start) out.push({ start: r.start, end: start - 1n });
    if (end < r.end) out.push({ start: end + 1n, end: r.end });
  }
  return out;
}
