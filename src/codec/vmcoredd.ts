/**
 * Device dump notes (include/uapi/linux/vmcore.h, include/uapi/linux/elf.h):
 * what /proc/vmcore puts in front of each device dump a driver added with
 * vmcore_add_device_dump(), and what every reader of those notes decodes.
 * Shared by the kernel (/proc/vmcore, the pstore devcoredump frontend), the
 * dump formats (LKCD's device-dump block, the ELF export) and the readers.
 */
import { bytes, cstring, u32 } from './field.js';
import { defineStruct, type ValueOf } from './struct.js';

/** NT_VMCOREDD: "Vmcore Device Dump Note". */
export const NT_VMCOREDD = 0x700;
/** VMCOREDD_NOTE_NAME: the note's owner; n_namesz is 8 (the name field's size), not 6. */
export const VMCOREDD_NOTE_NAME = 'LINUX';
/** VMCOREDD_MAX_NAME_BYTES: dump_name, NUL included. */
export const VMCOREDD_MAX_NAME_BYTES = 44;

/**
 * struct vmcoredd_header: a complete Elf64_Nhdr, the 8-byte note name
 * "LINUX\0\0\0", and the device's dump_name (the first 44 bytes of the
 * descriptor), in front of a device dump's data. 64 bytes, no padding.
 */
export const vmcoredd_header = defineStruct('vmcoredd_header', {
  n_namesz: u32,
  n_descsz: u32,
  n_type: u32,
  name: bytes(8),
  dump_name: cstring(VMCOREDD_MAX_NAME_BYTES),
});
export type VmcoreddHeader = ValueOf<typeof vmcoredd_header>;

/** Bytes of the vmcoredd_header before the descriptor: the Nhdr and the 8-byte name. */
export const VMCOREDD_NOTE_HEAD_BYTES = vmcoredd_header.size - VMCOREDD_MAX_NAME_BYTES;

/** True when `name` can be a dump_name: 1 to 43 latin1 bytes. */
export function validDumpName(name: string): boolean {
  const n = Buffer.byteLength(name, 'latin1');
  return n > 0 && n < VMCOREDD_MAX_NAME_BYTES && !name.includes('\0');
}

/**
 * vmcoredd_write_header(): the header of a dump whose whole note is
 * `noteBytes` long (fs/proc/vmcore.c passes data_size - 64, the bytes after
 * the header, and n_descsz counts dump_name too).
 */
export function vmcoreddHeaderBytes(dumpName: string, noteBytes: number): Uint8Array {
  const name = new Uint8Array(8);
  name.set(Buffer.from(VMCOREDD_NOTE_NAME, 'latin1'));
  return vmcoredd_header.toBytes({
    n_namesz: name.length, n_descsz: noteBytes - vmcoredd_header.size + VMCOREDD_MAX_NAME_BYTES, n_type: NT_VMCOREDD, name, dump_name: dumpName,
  });
}

/** A whole NT_VMCOREDD note: the header and `data`, zero-filled to `noteBytes` (data.length + 64 at least). */
export function encodeVmcoreddNote(dumpName: string, data: Uint8Array, noteBytes: number): Uint8Array {
  if (noteBytes < vmcoredd_header.size + data.length) throw new RangeError(`a ${noteBytes}-byte note cannot hold ${data.length} bytes of dump`);
  const out = new Uint8Array(noteBytes);
  out.set(vmcoreddHeaderBytes(dumpName, noteBytes), 0);
  out.set(data, vmcoredd_header.size);
  return out;
}
