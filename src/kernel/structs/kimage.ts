import { array, cstring, defineStruct, u32, u64, type ValueOf } from '../../codec/index.js';
import { COMMAND_LINE_SIZE } from '../constants.js';

/** KEXEC_SEGMENT_MAX in include/linux/kexec.h is 16. */
export const KEXEC_SEGMENT_MAX = 16;
export const KIMAGE_MAGIC = 0x4547414d494b4c4en; // "NLKIMAGE"

/** struct kexec_segment: where a segment goes (mem, memsz) and how much the loader gave (bufsz). */
export const kexec_segment = defineStruct('kexec_segment', {
  buf: u64,
  bufsz: u64,
  mem: u64,
  memsz: u64,
});

/**
 * struct kimage (include/linux/kexec.h), the members kexec needs: the head
 * of the indirection list, the entry point, the segments; plus the command
 * line the loader put in a segment, kept here so the new kernel receives it.
 */
export const kimage = defineStruct('kimage', {
  magic: u64,
  head: u64,
  start: u64,
  nr_segments: u32,
  type: u32,
  segment: array(kexec_segment, KEXEC_SEGMENT_MAX),
  release: cstring(65),
  _pad: cstring(3),
  cmdline_len: u32,
  cmdline: cstring(COMMAND_LINE_SIZE),
});
export type Kimage = ValueOf<typeof kimage>;

/** Entry flags of the indirection list (include/linux/kexec.h). */
export const IND_DESTINATION = 0x1n;
export const IND_INDIRECTION = 0x2n;
export const IND_DONE = 0x4n;
export const IND_SOURCE = 0x8n;
export const IND_FLAGS = 0xfn;
