/**
 * Sizes and offsets of the kdump structures against the C sizeof and
 * offsetof of their headers (64-bit x86): diskdump_mod.h of makedumpfile,
 * bootparam.h, ioport.h, kcore.h, crash_core.h.
 */
import { describe, expect, it } from 'vitest';
import {
  boot_params, CRASH_CORE_NOTE_BYTES, e820_entry, resource, VMCOREINFO_NOTE_SIZE,
} from '../../../src/kernel/index.js';
import { vmcore } from '../../../src/kernel/structs/vmcore.js';
import { disk_dump_header, kdump_sub_header, page_desc } from '../../../src/dump/index.js';

describe('kdump structures', () => {
  it('makedumpfile: disk_dump_header 464 bytes (timestamp at 408), kdump_sub_header 104, page_desc 24', () => {
    expect(disk_dump_header.size).toBe(464);
    expect(disk_dump_header.offsetOf.tv_sec).toBe(408);
    expect(disk_dump_header.offsetOf.status).toBe(424);
    expect(disk_dump_header.offsetOf.nr_cpus).toBe(460);
    expect(kdump_sub_header.size).toBe(104);
    expect(kdump_sub_header.offsetOf.offset_note).toBe(48);
    expect(kdump_sub_header.offsetOf.max_mapnr_64).toBe(96);
    expect(page_desc.size).toBe(24);
  });
  it('boot_params is the 4 KiB zero page with the loader fields at their documented offsets', () => {
    expect(boot_params.size).toBe(4096);
    expect(boot_params.offsetOf.ext_ramdisk_image).toBe(0x0c0);
    expect(boot_params.offsetOf.ext_cmd_line_ptr).toBe(0x0c8);
    expect(boot_params.offsetOf.e820_entries).toBe(0x1e8);
    expect(boot_params.offsetOf.boot_flag).toBe(0x1fe);
    expect(boot_params.offsetOf.header).toBe(0x202);
    expect(boot_params.offsetOf.ramdisk_image).toBe(0x218);
    expect(boot_params.offsetOf.cmd_line_ptr).toBe(0x228);
    expect(boot_params.offsetOf.e820_table).toBe(0x2d0);
    expect(e820_entry.size).toBe(20);
  });
  it('struct resource 64, struct vmcore 40, note_buf_t 368, VMCOREINFO_NOTE_SIZE 4132', () => {
    expect(resource.size).toBe(64);
    expect(vmcore.size).toBe(40);
    expect(CRASH_CORE_NOTE_BYTES).toBe(368);
    expect(VMCOREINFO_NOTE_SIZE).toBe(4132);
  });
});
