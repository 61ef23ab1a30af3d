import fs from 'node:fs';
import {
  CorruptDumpError, EI_CLASS, EI_DATA, ELFCLASS64, ELFDATA2LSB, Elf64_Ehdr, Elf64_Nhdr, Elf64_Phdr, ELF_NOTE_ALIGN,
  GNU_NOTE_NAME, ioError, NT_GNU_BUILD_ID, PT_NOTE, viewOf,
} from '../codec/index.js';
import { BUILD_ID_NOTE_BYTES } from './layout.js';
import type { Kernel } from './kernel.js';

/** A SHA-1 build ID, as `ld --build-id=sha1` makes it: 20 bytes. */
export const BUILD_ID_SIZE = 20;
/** Bound on the PT_NOTE bytes read from an ELF file while looking for the build ID. */
const MAX_NOTE_BYTES = 1 << 20;

const NAME_BYTES = Buffer.from(`${GNU_NOTE_NAME}\0`, 'latin1');

/** The NT_GNU_BUILD_ID note for `id` (Elf64_Nhdr, "GNU\0", the descriptor), BUILD_ID_NOTE_BYTES long. */
export function encodeBuildIdNote(id: Uint8Array): Uint8Array {
  if (id.length !== BUILD_ID_SIZE) throw new RangeError(`build ID of ${id.length} bytes, expected ${BUILD_ID_SIZE}`);
  const out = new Uint8Array(BUILD_ID_NOTE_BYTES);
  Elf64_Nhdr.encode({ n_namesz: NAME_BYTES.length, n_descsz: BUILD_ID_SIZE, n_type: NT_GNU_BUILD_ID }, viewOf(out), 0);
  out.set(NAME_BYTES, Elf64_Nhdr.size);
  out.set(id, Elf64_Nhdr.size + NAME_BYTES.length);
  return out;
}

const align4 = (n: number): number => (n + ELF_NOTE_ALIGN - 1) & ~(ELF_NOTE_ALIGN - 1);

/**
 * The descriptor of the first NT_GNU_BUILD_ID note named "GNU" in a run of
 * ELF notes, or null; an all-zero descriptor (a build ID not filled in yet)
 * is null too. Each note is checked against the bytes before it is read.
 */
export function findBuildId(notes: Uint8Array): Uint8Array | null {
  const view = viewOf(notes);
  for (let off = 0; off + Elf64_Nhdr.size <= notes.length;) {
    const h = Elf64_Nhdr.decode(view, off);
    const name = off + Elf64_Nhdr.size;
    const desc = name + align4(h.n_namesz);
    const end = desc + align4(h.n_descsz);
    if (h.n_namesz > notes.length || h.n_descsz > notes.length || desc + h.n_descsz > notes.length) return null;
    if (h.n_type === NT_GNU_BUILD_ID && Buffer.from(notes.subarray(name, name + h.n_namesz)).equals(NAME_BYTES)) {
      const id = new Uint8Array(notes.subarray(desc, desc + h.n_descsz));
      return id.length > 0 && id.some((b) => b !== 0) ? id : null;
    }
    if (end <= off) return null;
    off = end;
  }
  return null;
}

export function buildIdHex(id: Uint8Array): string {
  return Buffer.from(id).toString('hex');
}

/** The running kernel's build ID, read from its notes in RAM (__start_notes), as init_vmlinux_build_id() does. */
export function kernelBuildId(kernel: Kernel): string | null {
  const id = findBuildId(kernel.readBytes('__start_notes', 0, BUILD_ID_NOTE_BYTES));
  return id ? buildIdHex(id) : null;
}

/**
 * The GNU build ID of an ELF file (vmlinux, vmlinuz) from its PT_NOTE
 * segments, or null when it has none. A file that is not a 64-bit
 * little-endian ELF is a corrupt-input error naming the file.
 */
export function elfFileBuildId(file: string): string | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw ioError(`opening ${file}`, e as NodeJS.ErrnoException);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const read = (offset: number, length: number): Buffer => {
      const b = Buffer.alloc(length);
      const n = fs.readSync(fd, b, 0, length, offset);
      if (n !== length) throw new CorruptDumpError(`${file}: truncated at offset ${offset}`, { file, offset });
      return b;
    };
    if (size < Elf64_Ehdr.size) throw new CorruptDumpError(`${file}: too short for an ELF header`, { file });
    const eh = Elf64_Ehdr.decode(viewOf(read(0, Elf64_Ehdr.size)));
    if (eh.e_ident[0] !== 0x7f || eh.e_ident[1] !== 0x45 || eh.e_ident[2] !== 0x4c || eh.e_ident[3] !== 0x46
      || eh.e_ident[EI_CLASS] !== ELFCLASS64 || eh.e_ident[EI_DATA] !== ELFDATA2LSB) {
      throw new CorruptDumpError(`${file}: not a 64-bit little-endian ELF file`, { file, struct: 'Elf64_Ehdr', field: 'e_ident' });
    }
    if (eh.e_phentsize !== Elf64_Phdr.size || eh.e_phnum > 64 || Number(eh.e_phoff) + eh.e_phnum * Elf64_Phdr.size > size) {
      throw new CorruptDumpError(`${file}: bad program header table (e_phnum ${eh.e_phnum})`, { file, struct: 'Elf64_Ehdr', field: 'e_phnum' });
    }
    const table = viewOf(read(Number(eh.e_phoff), eh.e_phnum * Elf64_Phdr.size));
    for (let i = 0; i < eh.e_phnum; i++) {
      const ph = Elf64_Phdr.decode(table, i * Elf64_Phdr.size);
      if (ph.p_type !== PT_NOTE) continue;
      if (ph.p_filesz > BigInt(MAX_NOTE_BYTES) || ph.p_offset + ph.p_filesz > BigInt(size)) {
        throw new CorruptDumpError(`${file}: PT_NOTE ${i} (${ph.p_filesz} bytes at ${ph.p_offset}) does not fit the file`, { file, struct: 'Elf64_Phdr', field: 'p_filesz' });
      }
      const id = findBuildId(read(Number(ph.p_offset), Number(ph.p_filesz)));
      if (id) return buildIdHex(id);
    }
    return null;
  } finally {
    fs.closeSync(fd);
  }
}
