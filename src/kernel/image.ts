import {
  CorruptDumpError, DumpError, EI_CLASS, EI_DATA, EI_MAG0, EI_VERSION, ELFCLASS64, ELFDATA2LSB, EM_X86_64,
  EV_CURRENT, Elf64_Ehdr, Elf64_Phdr, PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE, viewOf,
} from '../codec/index.js';
import { PAGE_SIZE, readRegularFile } from '../machine/index.js';
import { BUILD_ID_NOTE_BYTES, LOG_BUF_LEN, kernelLayout, type KernelConfig, type KernelLayout } from './layout.js';
import { kallsyms_entry, lkcd_kernel_header, LKCD_KERNEL_HEADER_VERSION, LKCD_KERNEL_MAGIC } from './structs/kernel_header.js';
import { uts_namespace } from './structs/new_utsname.js';
import { KERNEL_BUILD_VERSION } from './build_info.js';
import { writeImageStatics } from './image_statics.js';

/**
 * Largest kernel image file read (kexec -l, KEXEC_IMAGE, the boot loader).
 * Ours are about 2 MiB; a distribution's vmlinux with debug info can reach
 * tens of MiB, so the bound leaves room while refusing a runaway input.
 */
export const KERNEL_IMAGE_MAX_BYTES = 64 << 20;

/** ET_EXEC from <elf.h>: vmlinux is an executable. */
export const ET_EXEC = 2;

/** One PT_LOAD of a kernel image: `bytes` go at `paddr`, zero-filled up to `memsz`. */
export interface ImageSegment {
  vaddr: bigint;
  paddr: bigint;
  bytes: Uint8Array;
  memsz: bigint;
  flags: number;
}

export interface KernelImage {
  layout: KernelLayout;
  segments: ImageSegment[];
}

/** Machine code and read-only data the simulated kernel is "compiled" to: borrowed from a real ELF. */
export interface TextSource { text: Uint8Array; rodata: Uint8Array }

function fillFrom(dst: Uint8Array, src: Uint8Array): void {
  if (src.length === 0) return;
  for (let off = 0; off < dst.length; off += src.length) dst.set(src.subarray(0, Math.min(src.length, dst.length - off)), off);
}

/**
 * Builds the loadable image of a kernel: header page, .text from real x86_64
 * code, .rodata with the kallsyms table, .data with statically initialised
 * variables (init_uts_ns, log_buf pointer and length). A pure function of
 * the configuration and the borrowed code.
 */
export function buildKernelImage(config: KernelConfig, source: TextSource): KernelImage {
  const layout = kernelLayout(config);
  const { text, rodata, data, bss } = layout.sections;
  const loadable = new Uint8Array(bss.offset);
  const view = viewOf(loadable);
  const symOff = (name: string): number => {
    const s = layout.symbols.find((x) => x.name === name);
    if (!s) throw new DumpError('INTERNAL', `kernel layout has no ${name}`);
    return Number(s.address - layout.textVaddr);
  };
  fillFrom(loadable.subarray(text.offset, text.offset + text.size), source.text);
  fillFrom(loadable.subarray(rodata.offset, rodata.offset + rodata.size), source.rodata);
  loadable.fill(0, data.offset, data.offset + data.size);

  const kallsymsOff = symOff('kallsyms_table');
  const kallsymsSize = Number(layout.symbols.find((s) => s.name === 'kallsyms_table')!.size);
  loadable.fill(0, kallsymsOff, kallsymsOff + kallsymsSize);
  layout.symbols.forEach((s, i) => {
    kallsyms_entry.encode({ address: s.address, size: s.size, type: s.type, name: s.name }, view, kallsymsOff + i * kallsyms_entry.size);
  });
  const banner = `Linux version ${config.release} (lkcd@softboot) (gcc version 12.2.0 (Debian 12.2.0-14)) ${KERNEL_BUILD_VERSION}\n`;
  const bannerOff = symOff('linux_banner');
  loadable.fill(0, bannerOff, bannerOff + 256);
  loadable.set(Buffer.from(banner, 'latin1'), bannerOff);

  lkcd_kernel_header.encode({
    magic: LKCD_KERNEL_MAGIC,
    version: LKCD_KERNEL_HEADER_VERSION,
    header_size: lkcd_kernel_header.size,
    physical_start: config.physicalStart,
    text_vaddr: layout.textVaddr,
    image_size: BigInt(layout.imageSize),
    kallsyms_vaddr: layout.textVaddr + BigInt(kallsymsOff),
    kallsyms_count: layout.symbols.length,
    kallsyms_entry_size: kallsyms_entry.size,
    release: config.release,
    _pad: '',
  }, view, 0);
  loadable.fill(0, lkcd_kernel_header.size, PAGE_SIZE);

  uts_namespace.encode({
    kref: 1,
    name: { sysname: 'Linux', nodename: '(none)', release: config.release, version: KERNEL_BUILD_VERSION, machine: 'x86_64', domainname: '(none)' },
    _pad: new Uint8Array(2),
  }, view, symOff('init_uts_ns'));
  view.setBigUint64(symOff('log_buf'), layout.textVaddr + BigInt(symOff('__log_buf')), true);
  view.setUint32(symOff('log_buf_len'), LOG_BUF_LEN, true);
  writeImageStatics(loadable, layout);

  return {
    layout,
    segments: [
      { vaddr: layout.textVaddr, paddr: config.physicalStart, bytes: loadable.subarray(0, data.offset), memsz: BigInt(data.offset), flags: PF_R | PF_X },
      {
        vaddr: layout.textVaddr + BigInt(data.offset), paddr: config.physicalStart + BigInt(data.offset),
        bytes: loadable.subarray(data.offset, bss.offset), memsz: BigInt(bss.offset - data.offset + bss.size), flags: PF_R | PF_W,
      },
    ],
  };
}

/**
 * Serialises an image as an ELF64 x86_64 executable (vmlinux-style, one
 * PT_LOAD per segment, then a PT_NOTE over the build-ID note in the first).
 */
export function encodeKernelElf(image: KernelImage): Uint8Array {
  const phoff = Elf64_Ehdr.size;
  const dataStart = PAGE_SIZE;
  let offset = dataStart;
  const placed = image.segments.map((s) => {
    const at = offset;
    offset += Math.ceil(s.bytes.length / PAGE_SIZE) * PAGE_SIZE;
    return { s, at };
  });
  const notes = image.layout.symbols.find((s) => s.name === '__start_notes');
  const phnum = placed.length + (notes ? 1 : 0);
  const out = new Uint8Array(offset);
  const view = viewOf(out);
  const ident = new Uint8Array(16);
  ident.set([0x7f, 0x45, 0x4c, 0x46], EI_MAG0);
  ident[EI_CLASS] = ELFCLASS64;
  ident[EI_DATA] = ELFDATA2LSB;
  ident[EI_VERSION] = EV_CURRENT;
  Elf64_Ehdr.encode({
    e_ident: ident, e_type: ET_EXEC, e_machine: EM_X86_64, e_version: EV_CURRENT,
    e_entry: image.layout.textVaddr, e_phoff: BigInt(phoff), e_shoff: 0n, e_flags: 0,
    e_ehsize: Elf64_Ehdr.size, e_phentsize: Elf64_Phdr.size, e_phnum: phnum,
    e_shentsize: 0, e_shnum: 0, e_shstrndx: 0,
  }, view, 0);
  placed.forEach(({ s, at }, i) => {
    Elf64_Phdr.encode({
      p_type: PT_LOAD, p_flags: s.flags, p_offset: BigInt(at), p_vaddr: s.vaddr, p_paddr: s.paddr,
      p_filesz: BigInt(s.bytes.length), p_memsz: s.memsz, p_align: BigInt(PAGE_SIZE),
    }, view, phoff + i * Elf64_Phdr.size);
    out.set(s.bytes, at);
  });
  if (notes) {
    const first = placed[0];
    const within = notes.address - first.s.vaddr;
    Elf64_Phdr.encode({
      p_type: PT_NOTE, p_flags: PF_R, p_offset: BigInt(first.at) + within, p_vaddr: notes.address, p_paddr: first.s.paddr + within,
      p_filesz: BigInt(BUILD_ID_NOTE_BYTES), p_memsz: BigInt(BUILD_ID_NOTE_BYTES), p_align: 4n,
    }, view, phoff + placed.length * Elf64_Phdr.size);
  }
  return out;
}

/**
 * Reads a kernel image file (as kexec -l and the boot loader do): checks the
 * ELF header, every PT_LOAD against the file size, and the LKCD kernel
 * header in the first segment. One-line errors name the file and field.
 */
export function readKernelImageFile(file: string): KernelImage {
  // Bounded and non-blocking: `kexec -l /dev/zero` or a FIFO ends with one line, not a hang.
  const bytes = readRegularFile(file, KERNEL_IMAGE_MAX_BYTES, 'kernel image');
  const fail = (msg: string, field?: string): never => {
    throw new CorruptDumpError(`${file}: ${msg}`, { file, struct: field ? 'Elf64_Ehdr' : undefined, field });
  };
  if (bytes.length < Elf64_Ehdr.size) fail(`too short for an ELF header (${bytes.length} bytes)`);
  const view = viewOf(bytes);
  const eh = Elf64_Ehdr.decode(view, 0);
  if (eh.e_ident[0] !== 0x7f || eh.e_ident[1] !== 0x45 || eh.e_ident[2] !== 0x4c || eh.e_ident[3] !== 0x46) fail('not an ELF file (bad e_ident magic)', 'e_ident');
  if (eh.e_ident[EI_CLASS] !== ELFCLASS64 || eh.e_ident[EI_DATA] !== ELFDATA2LSB) fail('not a 64-bit little-endian ELF', 'e_ident');
  if (eh.e_type !== ET_EXEC || eh.e_machine !== EM_X86_64) fail(`not an x86_64 executable (e_type ${eh.e_type}, e_machine ${eh.e_machine})`, 'e_machine');
  if (eh.e_phentsize !== Elf64_Phdr.size || eh.e_phnum === 0 || eh.e_phnum > 16) fail(`bad program header table (e_phnum ${eh.e_phnum})`, 'e_phnum');
  const segments: ImageSegment[] = [];
  for (let i = 0; i < eh.e_phnum; i++) {
    const at = Number(eh.e_phoff) + i * Elf64_Phdr.size;
    if (at + Elf64_Phdr.size > bytes.length) fail(`program header ${i} runs past the end of the file`, 'e_phoff');
    const ph = Elf64_Phdr.decode(view, at);
    if (ph.p_type !== PT_LOAD) continue;
    if (ph.p_offset + ph.p_filesz > BigInt(bytes.length)) fail(`PT_LOAD ${i} (offset 0x${ph.p_offset.toString(16)} + 0x${ph.p_filesz.toString(16)}) runs past the end of the file (${bytes.length} bytes): truncated image`);
    if (ph.p_filesz > ph.p_memsz) fail(`PT_LOAD ${i} has p_filesz > p_memsz`);
    segments.push({ vaddr: ph.p_vaddr, paddr: ph.p_paddr, bytes: bytes.subarray(Number(ph.p_offset), Number(ph.p_offset + ph.p_filesz)), memsz: ph.p_memsz, flags: ph.p_flags });
  }
  if (segments.length === 0) fail('no PT_LOAD segment');
  const first = segments[0];
  if (first.bytes.length < lkcd_kernel_header.size) fail('first segment too short for the kernel header');
  const h = lkcd_kernel_header.decode(viewOf(first.bytes), 0);
  if (h.magic !== LKCD_KERNEL_MAGIC) fail('no simulated-kernel header in the first segment (not an lkcd-softboot kernel)');
  if (h.physical_start !== first.paddr) fail(`kernel header physical_start 0x${h.physical_start.toString(16)} does not match PT_LOAD p_paddr 0x${first.paddr.toString(16)}`);
  const config: KernelConfig = { release: h.release, physicalStart: h.physical_start };
  const layout = kernelLayout(config);
  if (BigInt(layout.imageSize) !== h.image_size) fail(`image_size ${h.image_size} does not match this kernel build's layout (${layout.imageSize})`);
  return { layout, segments };
}
