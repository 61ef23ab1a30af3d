/**
 * ELF notes as the kernel writes them (append_elf_note, final_note in
 * kernel/crash_core.c) and as readers walk them: Elf64_Nhdr, the name with
 * its NUL padded to 4 bytes, the descriptor padded to 4 bytes.
 */
import { CorruptDumpError } from './errors.js';
import { Elf64_Nhdr, ELF_NOTE_ALIGN } from './elf.js';
import { viewOf } from './struct.js';

function pad4(n: number): number {
  return (n + ELF_NOTE_ALIGN - 1) & ~(ELF_NOTE_ALIGN - 1);
}

/** Bytes one note takes: header, padded name (with NUL), padded descriptor. */
export function elfNoteSize(name: string, descBytes: number): number {
  return Elf64_Nhdr.size + pad4(Buffer.byteLength(name, 'latin1') + 1) + pad4(descBytes);
}

/** Encodes one note (append_elf_note). */
export function encodeElfNote(name: string, type: number, desc: Uint8Array): Uint8Array {
  const nameBytes = Buffer.from(`${name}\0`, 'latin1');
  const out = new Uint8Array(elfNoteSize(name, desc.length));
  Elf64_Nhdr.encode({ n_namesz: nameBytes.length, n_descsz: desc.length, n_type: type }, viewOf(out));
  out.set(nameBytes, Elf64_Nhdr.size);
  out.set(desc, Elf64_Nhdr.size + pad4(nameBytes.length));
  return out;
}

/** One parsed note; `offset` is where its header starts in the buffer walked. */
export interface ElfNote {
  name: string;
  type: number;
  desc: Uint8Array;
  offset: number;
  /** Bytes the note takes, padding included. */
  size: number;
}

/**
 * Walks the notes in `bytes` until the buffer ends or an all-zero header
 * (final_note) is met, as vmcore's update_note_header_size_elf64() does.
 * A note that runs past the buffer is CorruptDumpError naming where; the
 * walk is bounded by the buffer's length.
 */
export function parseElfNotes(bytes: Uint8Array, what: string): ElfNote[] {
  const out: ElfNote[] = [];
  const view = viewOf(bytes);
  let at = 0;
  while (at + Elf64_Nhdr.size <= bytes.length) {
    const h = Elf64_Nhdr.decode(view, at);
    if (h.n_namesz === 0) break;
    const nameEnd = at + Elf64_Nhdr.size + pad4(h.n_namesz);
    const descEnd = nameEnd + pad4(h.n_descsz);
    if (descEnd > bytes.length || h.n_namesz > bytes.length || h.n_descsz > bytes.length) {
      throw new CorruptDumpError(`${what}: note at offset ${at} (n_namesz ${h.n_namesz}, n_descsz ${h.n_descsz}) runs past the ${bytes.length} bytes of notes`,
        { struct: 'Elf64_Nhdr', offset: at });
    }
    const rawName = bytes.subarray(at + Elf64_Nhdr.size, at + Elf64_Nhdr.size + h.n_namesz);
    const nul = rawName.indexOf(0);
    out.push({
      name: Buffer.from(rawName.subarray(0, nul < 0 ? rawName.length : nul)).toString('latin1'),
      type: h.n_type,
      desc: bytes.subarray(nameEnd, nameEnd + h.n_descsz),
      offset: at,
      size: descEnd - at,
    });
    at = descEnd;
  }
  return out;
}
