/**
 * The ELF core header fadump builds in the first kernel, at registration,
 * right after the crash info header in its reserved area
 * (fadump_setup_crash_memory_ranges, fadump_create_elfcore_headers):
 *
 *   PT_NOTE   placeholder for the CPU notes (offset and size 0): the
 *             capture boot fills it; always the first note
 *   PT_NOTE   VMCOREINFO, at fadump_relocate() of its address: inside the
 *             boot memory copy, since the note lies in boot memory
 *   PT_LOAD   the kernel-text mapping (ours, for x86_64: see below)
 *   PT_LOAD   boot memory [0, boot_memory_size): p_offset is the copy the
 *             firmware made, p_paddr the original address
 *   PT_LOAD   every other memory range, the reserved area left out
 *
 * p_offset holds physical addresses; /proc/vmcore re-bases them. On POWER
 * the kernel text is in the linear map, so the series has no text load;
 * on x86_64 it is mapped at __START_KERNEL_map, and readers that translate
 * symbols by PT_LOAD (vmcore-dmesg, makedumpfile, crash without a
 * vmlinux) need the load kexec-tools adds, so we add it, relocated like
 * every address in boot memory.
 */
import {
  Elf64_Ehdr, Elf64_Phdr, encodeCoreEhdr, PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE, viewOf, type Elf64Phdr,
} from '../../codec/index.js';
import { PAGE_SIZE_N } from '../../machine/index.js';
import type { PhysRange } from '../boot_layout.js';
import { PAGE_OFFSET } from '../constants.js';
import { RMA_START } from './constants.js';

/** An inclusive-exclusive physical range [base, base + size) of crash memory. */
export interface CrashMemoryRange { base: bigint; size: bigint }

/** [s, e) minus [ms, me). */
function subtract(s: bigint, e: bigint, ms: bigint, me: bigint): Array<[bigint, bigint]> {
  if (me <= s || ms >= e) return [[s, e]];
  const out: Array<[bigint, bigint]> = [];
  if (s < ms) out.push([s, ms]);
  if (me < e) out.push([me, e]);
  return out;
}

/**
 * fadump_setup_crash_memory_ranges(): boot memory as its own first range
 * (the firmware moves it), then every memory range with boot memory and
 * the reserved area cut out (fadump_exclude_reserved_area). On x86_64 the
 * first memory ranges lie inside boot memory (POWER's first range runs
 * past it), so boot memory is cut from every range, not only the one at 0.
 */
export function fadumpCrashMemoryRanges(memory: readonly PhysRange[], bootMemorySize: bigint, reserved: PhysRange): CrashMemoryRange[] {
  const out: CrashMemoryRange[] = [{ base: RMA_START, size: bootMemorySize }];
  for (const r of memory) {
    for (const [s, e] of subtract(r.start, r.end, RMA_START, bootMemorySize)) {
      for (const [a, b] of subtract(s, e, reserved.start, reserved.end)) if (b > a) out.push({ base: a, size: b - a });
    }
  }
  return out;
}

export interface FadumpElfcoreInfo {
  ranges: readonly CrashMemoryRange[];
  bootMemorySize: bigint;
  /** Where the firmware copies boot memory (fdm.rmr_region.destination_address). */
  bootMemoryDest: bigint;
  /** paddr_vmcoreinfo_note() and its size (vmcoreinfo_max_size). */
  vmcoreinfo: { paddr: bigint; size: bigint };
  /** _text's virtual and physical address, and the image's size. */
  kernelText: { vaddr: bigint; paddr: bigint; size: bigint };
}

/** fadump_relocate(): an address in boot memory is read from the copy. */
export function fadumpRelocate(paddr: bigint, bootMemorySize: bigint, dest: bigint): bigint {
  return paddr > RMA_START && paddr < bootMemorySize ? dest + paddr : paddr;
}

/** fadump_create_elfcore_headers(): the Ehdr and program headers, exactly sized. */
export function fadumpCreateElfcoreHeaders(info: FadumpElfcoreInfo): Uint8Array {
  const reloc = (a: bigint): bigint => fadumpRelocate(a, info.bootMemorySize, info.bootMemoryDest);
  const phdrs: Elf64Phdr[] = [
    { p_type: PT_NOTE, p_flags: 0, p_offset: 0n, p_vaddr: 0n, p_paddr: 0n, p_filesz: 0n, p_memsz: 0n, p_align: 0n },
    {
      p_type: PT_NOTE, p_flags: 0, p_offset: reloc(info.vmcoreinfo.paddr), p_vaddr: 0n, p_paddr: reloc(info.vmcoreinfo.paddr),
      p_filesz: info.vmcoreinfo.size, p_memsz: info.vmcoreinfo.size, p_align: 0n,
    },
  ];
  const t = info.kernelText;
  phdrs.push({ p_type: PT_LOAD, p_flags: PF_R | PF_W | PF_X, p_offset: reloc(t.paddr), p_vaddr: t.vaddr, p_paddr: t.paddr, p_filesz: t.size, p_memsz: t.size, p_align: 0n });
  for (const r of info.ranges) {
    if (r.size === 0n) continue;
    phdrs.push({
      p_type: PT_LOAD, p_flags: PF_R | PF_W | PF_X, p_offset: r.base === RMA_START ? info.bootMemoryDest : r.base,
      p_vaddr: PAGE_OFFSET + r.base, p_paddr: r.base, p_filesz: r.size, p_memsz: r.size, p_align: 0n,
    });
  }
  const out = new Uint8Array(Elf64_Ehdr.size + phdrs.length * Elf64_Phdr.size);
  const view = viewOf(out);
  encodeCoreEhdr(view, phdrs.length);
  phdrs.forEach((p, i) => Elf64_Phdr.encode(p, view, Elf64_Ehdr.size + i * Elf64_Phdr.size));
  return out;
}

/** The text PT_LOAD covers the image from _text to _end, page aligned. */
export function kernelTextSize(textVaddr: bigint, endVaddr: bigint): bigint {
  return ((endVaddr - textVaddr + PAGE_SIZE_N - 1n) / PAGE_SIZE_N) * PAGE_SIZE_N;
}
