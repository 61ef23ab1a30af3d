import { bytes, cstring, defineStruct, u32, type ValueOf } from '../../../codec/index.js';
import { VMCOREDD_MAX_NAME_BYTES } from '../constants.js';

/**
 * struct vmcoredd_header (include/uapi/linux/vmcore.h): an Elf64_Nhdr, the
 * 8-byte note name "LINUX\0\0\0", and the device's dump_name, in front of a
 * device dump's data. The devcoredump frontend (ours) uses it for each
 * device's note, as /proc/vmcore does for NT_VMCOREDD notes.
 */
export const vmcoredd_header = defineStruct('vmcoredd_header', {
  n_namesz: u32,
  n_descsz: u32,
  n_type: u32,
  name: bytes(8),
  dump_name: cstring(VMCOREDD_MAX_NAME_BYTES),
});
export type VmcoreddHeader = ValueOf<typeof vmcoredd_header>;
