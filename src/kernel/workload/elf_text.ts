/**
 * Finds a real x86_64 ELF on this machine and extracts its `.text` and
 * `.rodata` section bytes, which the workload uses as kernel text and kernel
 * read-only data. Section headers are parsed here (ELF-64 object file format,
 * version 1.5; glibc <elf.h>), with no dependency.
 */
import * as fs from 'node:fs';
import { CorruptDumpError, DumpError, TruncatedError } from '../../codec/errors.js';
import { EI_CLASS, EI_DATA, ELFCLASS64, ELFDATA2LSB, EM_X86_64, Elf64_Ehdr, Elf64_Shdr, SHN_UNDEF, SHN_XINDEX, SHT_PROGBITS } from '../../codec/elf.js';
import { toSafeNumber } from '../../codec/units.js';

export const ELFMAG = Uint8Array.of(0x7f, 0x45, 0x4c, 0x46); // "\177ELF"

/** At most this many bytes of each section are returned. */
export const ELF_SECTION_MAX_BYTES = 16 << 20;

/** Where to look, in order: the first x86_64 ELF with both sections wins. */
export function kernelTextElfCandidates(): string[] {
  return [process.execPath, '/usr/lib/x86_64-linux-gnu/libc.so.6', '/bin/sh'];
}

export interface KernelTextElf {
  path: string;
  text: Uint8Array;
  rodata: Uint8Array;
}

/**
 * Returns `.text` and `.rodata` of the first usable candidate, each cut to
 * `maxSectionBytes` (at most ELF_SECTION_MAX_BYTES), read from the start of
 * the section. Throws a NOINPUT DumpError naming every candidate and why it
 * was rejected when none is usable.
 */
export function findKernelTextElf(maxSectionBytes: number = ELF_SECTION_MAX_BYTES): KernelTextElf {
  const cap = Math.min(Math.max(0, Math.floor(maxSectionBytes)), ELF_SECTION_MAX_BYTES);
  const rejected: string[] = [];
  for (const path of kernelTextElfCandidates()) {
    try {
      const sections = readElfSections(path, ['.text', '.rodata'], cap);
      const text = sections.get('.text');
      const rodata = sections.get('.rodata');
      if (!text || text.length === 0) { rejected.push(`${path}: no .text section`); continue; }
      if (!rodata || rodata.length === 0) { rejected.push(`${path}: no .rodata section`); continue; }
      return { path, text, rodata };
    } catch (err) {
      rejected.push(`${path}: ${(err as Error).message}`);
    }
  }
  throw new DumpError('NOINPUT',
    `no x86_64 ELF with .text and .rodata found for kernel text (${rejected.join('; ')})`);
}

/**
 * Reads the named SHT_PROGBITS sections of an x86_64 little-endian ELF-64
 * file, each cut to `maxBytes`. Sections that are absent are left out of the
 * result. Throws CorruptDumpError / TruncatedError for a file that is not a
 * well-formed ELF-64 x86_64 object.
 */
export function readElfSections(path: string, names: readonly string[], maxBytes: number): Map<string, Uint8Array> {
  const fd = fs.openSync(path, 'r');
  try {
    const fileSize = fs.fstatSync(fd).size;
    const ehdr = Elf64_Ehdr.fromBytes(readAt(fd, 0, Math.min(Elf64_Ehdr.size, fileSize), path));
    checkElf64Ehdr(ehdr, path);

    const shoff = toSafeNumber(ehdr.e_shoff, 'Elf64_Ehdr.e_shoff');
    if (shoff === 0) return new Map();
    if (ehdr.e_shentsize < Elf64_Shdr.size) {
      throw new CorruptDumpError(`${path}: e_shentsize ${ehdr.e_shentsize} is smaller than Elf64_Shdr (${Elf64_Shdr.size})`,
        { file: path, struct: 'Elf64_Ehdr', field: 'e_shentsize' });
    }
    const shdrAt = (index: number) => {
      const at = shoff + index * ehdr.e_shentsize;
      if (at + Elf64_Shdr.size > fileSize) {
        throw new TruncatedError(`${path}: section header ${index} at ${at} runs past the end of the file`,
          { file: path, struct: 'Elf64_Shdr', offset: at });
      }
      return Elf64_Shdr.fromBytes(readAt(fd, at, Elf64_Shdr.size, path));
    };

    // With 0xff00 or more sections, e_shnum is 0 and section 0 holds the
    // count in sh_size, and e_shstrndx is SHN_XINDEX with the index in sh_link.
    const shdr0 = shdrAt(0);
    const shnum = ehdr.e_shnum !== 0 ? ehdr.e_shnum : toSafeNumber(shdr0.sh_size, 'Elf64_Shdr[0].sh_size');
    const shstrndx = ehdr.e_shstrndx === SHN_XINDEX ? shdr0.sh_link : ehdr.e_shstrndx;
    // Never trust a count read from the file for a loop bound without the file size.
    if (shoff + shnum * ehdr.e_shentsize > fileSize) {
      throw new TruncatedError(`${path}: ${shnum} section headers at ${shoff} run past the end of the file (${fileSize})`,
        { file: path, struct: 'Elf64_Ehdr', field: 'e_shnum' });
    }
    if (shstrndx === SHN_UNDEF || shstrndx >= shnum) {
      throw new CorruptDumpError(`${path}: e_shstrndx ${shstrndx} is not a section (have ${shnum})`,
        { file: path, struct: 'Elf64_Ehdr', field: 'e_shstrndx' });
    }
    const strtab = shdrAt(shstrndx);
    const strtabBytes = readSection(fd, strtab, fileSize, Number.MAX_SAFE_INTEGER, path, 'section name table');

    const wanted = new Set(names);
    const found = new Map<string, Uint8Array>();
    for (let i = 1; i < shnum && found.size < wanted.size; i++) {
      const sh = shdrAt(i);
      const name = cstringAt(strtabBytes, sh.sh_name);
      if (!wanted.has(name) || found.has(name)) continue;
      // SHT_NOBITS (.bss-like) sections have no bytes in the file.
      if (sh.sh_type !== SHT_PROGBITS) continue;
      found.set(name, readSection(fd, sh, fileSize, maxBytes, path, name));
    }
    return found;
  } finally {
    fs.closeSync(fd);
  }
}

function checkElf64Ehdr(ehdr: ReturnType<typeof Elf64_Ehdr.decode>, path: string): void {
  const where = { file: path, struct: 'Elf64_Ehdr' };
  if (!ELFMAG.every((b, i) => ehdr.e_ident[i] === b)) {
    throw new CorruptDumpError(`${path}: not an ELF file (bad magic)`, { ...where, field: 'e_ident' });
  }
  if (ehdr.e_ident[EI_CLASS] !== ELFCLASS64 || ehdr.e_ident[EI_DATA] !== ELFDATA2LSB) {
    throw new CorruptDumpError(`${path}: not a little-endian ELF-64 file`, { ...where, field: 'e_ident' });
  }
  if (ehdr.e_machine !== EM_X86_64) {
    throw new CorruptDumpError(`${path}: e_machine ${ehdr.e_machine} is not EM_X86_64 (${EM_X86_64})`,
      { ...where, field: 'e_machine' });
  }
}

function readSection(fd: number, sh: ReturnType<typeof Elf64_Shdr.decode>, fileSize: number, maxBytes: number,
  path: string, what: string): Uint8Array {
  const offset = toSafeNumber(sh.sh_offset, `${what} sh_offset`);
  const size = toSafeNumber(sh.sh_size, `${what} sh_size`);
  if (offset + size > fileSize) {
    throw new TruncatedError(`${path}: ${what} (${size} bytes at ${offset}) runs past the end of the file (${fileSize})`,
      { file: path, struct: 'Elf64_Shdr', field: 'sh_size', offset });
  }
  return readAt(fd, offset, Math.min(size, maxBytes), path);
}

function readAt(fd: number, position: number, length: number, path: string): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, out, done, length - done, position + done);
    if (n === 0) {
      throw new TruncatedError(`${path}: expected ${length} bytes at ${position}, file ended after ${done}`,
        { file: path, offset: position + done });
    }
    done += n;
  }
  return out;
}

function cstringAt(table: Uint8Array, offset: number): string {
  if (offset >= table.length) return '';
  let end = table.indexOf(0, offset);
  if (end < 0) end = table.length;
  return Buffer.from(table.buffer, table.byteOffset + offset, end - offset).toString('latin1');
}
