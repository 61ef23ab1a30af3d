import { array, bytes, defineStruct, u16, u32, u8, type ValueOf } from '../../codec/index.js';
import { E820_MAX_ENTRIES_ZEROPAGE, e820_entry } from './e820.js';

/**
 * struct boot_params, the x86 "zero page" (arch/x86/include/uapi/asm/bootparam.h,
 * Documentation/x86/zero-page.rst): the members a kexec loader fills for
 * the kernel it boots, at their real offsets (ext_ramdisk_image 0x0c0,
 * e820_entries 0x1e8, the setup_header from 0x1f1, cmd_line_ptr 0x228,
 * e820_table 0x2d0); everything else is explicit padding.
 */
export const boot_params = defineStruct('boot_params', {
  _pad_screen_info: bytes(0x0c0),
  ext_ramdisk_image: u32,      // 0x0c0: high 32 bits of ramdisk_image
  ext_ramdisk_size: u32,       // 0x0c4
  ext_cmd_line_ptr: u32,       // 0x0c8
  _pad_0cc: bytes(0x1e8 - 0x0cc),
  e820_entries: u8,            // 0x1e8
  _pad_1e9: bytes(0x1fe - 0x1e9),
  boot_flag: u16,              // 0x1fe: 0xAA55
  jump: u16,                   // 0x200
  header: u32,                 // 0x202: "HdrS"
  version: u16,                // 0x206: boot protocol version
  _pad_208: bytes(0x218 - 0x208),
  ramdisk_image: u32,          // 0x218
  ramdisk_size: u32,           // 0x21c
  _pad_220: bytes(0x228 - 0x220),
  cmd_line_ptr: u32,           // 0x228
  _pad_22c: bytes(0x2d0 - 0x22c),
  e820_table: array(e820_entry, E820_MAX_ENTRIES_ZEROPAGE), // 0x2d0
  _pad_cd0: bytes(0x1000 - 0xcd0),
});
export type ZeroPage = ValueOf<typeof boot_params>;

/** setup_header.boot_flag and .header magics (Documentation/x86/boot.rst). */
export const BOOT_FLAG_MAGIC = 0xaa55;
export const SETUP_HEADER_MAGIC = 0x53726448; // "HdrS"
/** Boot protocol 2.15, the version 5.4 implements. */
export const BOOT_PROTOCOL_VERSION = 0x020f;
