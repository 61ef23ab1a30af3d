import { Elf64_Nhdr, elf_prstatus } from '../../codec/index.js';
import { VMCOREINFO_BYTES } from '../constants.js';

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** KEXEC_CORE_NOTE_NAME and VMCOREINFO_NOTE_NAME with their NULs (include/linux/crash_core.h). */
export const KEXEC_CORE_NOTE_NAME = 'CORE';
export const VMCOREINFO_NOTE_NAME = 'VMCOREINFO';

/** CRASH_CORE_NOTE_HEAD_BYTES: ALIGN(sizeof(struct elf_note), 4). */
export const CRASH_CORE_NOTE_HEAD_BYTES = align4(Elf64_Nhdr.size);

/**
 * CRASH_CORE_NOTE_BYTES, the size of one CPU's note_buf_t in crash_notes:
 * an NT_PRSTATUS note and the empty note final_note() writes after it.
 */
export const CRASH_CORE_NOTE_BYTES = CRASH_CORE_NOTE_HEAD_BYTES * 2
  + align4(KEXEC_CORE_NOTE_NAME.length + 1) + align4(elf_prstatus.size);

/** VMCOREINFO_NOTE_SIZE: the note's header, the empty final note, the name and VMCOREINFO_BYTES of text. */
export const VMCOREINFO_NOTE_SIZE = CRASH_CORE_NOTE_HEAD_BYTES * 2
  + align4(VMCOREINFO_NOTE_NAME.length + 1) + VMCOREINFO_BYTES;
