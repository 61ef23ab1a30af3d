/**
 * Firmware-assisted dump in pieces: the structures against gcc compiling
 * the 2011 definitions (arch/powerpc/include/asm/fadump.h, with x86_64's
 * pt_regs and a one-long cpumask); the magics against the kernel's own
 * comment ("FADMPINF" is 0x4641444d50494e46); the boot memory rule against
 * fadump_calculate_reserve_size() worked by hand; the register save area
 * built here byte by byte from PAPR's description and read back as
 * NT_PRSTATUS notes decoded here at elf_prstatus's x86_64 offsets; and the
 * firmware's answers to ibm,configure-kernel-dump.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FADUMP_INVALIDATE, FADUMP_REGISTER, FADUMP_UNREGISTER, fadump_mem_struct, fadump_reg_entry, fadump_reg_save_area_header,
  fadump_section, fadump_section_header, fadumpStrToU64, kernelDumpSizes, MachineRoot, PhysicalRam, PlatformFirmware,
  REGSAVE_AREA_MAGIC, RTAS_OUT_DUMP_ACTIVE, RTAS_OUT_DUMP_ALREADY_REGISTERED, RTAS_OUT_PARAM_ERROR, RTAS_OUT_SUCCESS,
  X86_64_REG_IDS, readHardwareFile, FW_KERNEL_DUMP_PROPERTY, FW_REGISTRATION, type X86RegId,
} from '../../../src/machine/index.js';
import {
  configForRam, CPU_UNKNOWN, fadump_crash_info_header, FADUMP_CRASH_INFO_MAGIC, fadumpBuildCpuNotes, fadumpCalculateReserveSize,
  fadumpMinBootMem, fw_dump, kernelLayout, initFadumpMemStruct, pt_regs,
} from '../../../src/kernel/index.js';
import { makeTempDir, removeTempDir, MiB } from '../../helpers/machine.js';
import { needs } from '../../helpers/tools.js';

const G = 1n << 30n;

const gcc = needs('gcc');
describe(`the fadump structures have the layout gcc gives the kernel's definitions${gcc.reason}`, () => {
  gcc.it('sizeof and offsetof of fadump_section, fadump_section_header, fadump_mem_struct, the register save area and fadump_crash_info_header', () => {
    const dir = makeTempDir('fadump-c');
    try {
      const src = `#include <stdio.h>
#include <stddef.h>
typedef unsigned int u32; typedef unsigned short u16; typedef unsigned long long u64;
struct pt_regs { unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss; };
struct cpumask { unsigned long bits[1]; };
struct fadump_section { u32 request_flag; u16 source_data_type; u16 error_flags; u64 source_address; u64 source_len; u64 bytes_dumped; u64 destination_address; };
struct fadump_section_header { u32 dump_format_version; u16 dump_num_sections; u16 dump_status_flag; u32 offset_first_dump_section;
  u32 dd_block_size; u64 dd_block_offset; u64 dd_num_blocks; u32 dd_offset_disk_path; u32 max_time_auto; };
struct fadump_mem_struct { struct fadump_section_header header; struct fadump_section cpu_state_data; struct fadump_section hpte_region; struct fadump_section rmr_region; };
struct fadump_reg_save_area_header { u64 magic_number; u32 version; u32 num_cpu_offset; };
struct fadump_reg_entry { u64 reg_id; u64 reg_value; };
struct fadump_crash_info_header { u64 magic_number; u64 elfcorehdr_addr; u32 crashing_cpu; struct pt_regs regs; struct cpumask online_mask; };
struct fw_dump { unsigned long cpu_state_data_size, hpte_region_size, boot_memory_size, reserve_dump_area_start, reserve_dump_area_size,
  reserve_bootvar, fadumphdr_addr, cpu_notes_buf, cpu_notes_buf_size; int ibm_configure_kernel_dump;
  unsigned long fadump_enabled:1, fadump_supported:1, dump_active:1, dump_registered:1; };
#define P(s, m) printf(#s "." #m " %zu\\n", offsetof(struct s, m))
int main(void) {
  printf("fadump_section %zu\\nfadump_section_header %zu\\nfadump_mem_struct %zu\\nfadump_reg_save_area_header %zu\\nfadump_reg_entry %zu\\nfadump_crash_info_header %zu\\n",
    sizeof(struct fadump_section), sizeof(struct fadump_section_header), sizeof(struct fadump_mem_struct),
    sizeof(struct fadump_reg_save_area_header), sizeof(struct fadump_reg_entry), sizeof(struct fadump_crash_info_header));
  P(fadump_section, source_address); P(fadump_section, destination_address);
  P(fadump_section_header, dd_block_offset); P(fadump_section_header, max_time_auto);
  P(fadump_mem_struct, cpu_state_data); P(fadump_mem_struct, hpte_region); P(fadump_mem_struct, rmr_region);
  P(fadump_crash_info_header, crashing_cpu); P(fadump_crash_info_header, regs); P(fadump_crash_info_header, online_mask);
  P(fw_dump, ibm_configure_kernel_dump);
  return 0;
}
`;
      const c = path.join(dir, 'layout.c');
      const bin = path.join(dir, 'layout');
      fs.writeFileSync(c, src);
      const cc = spawnSync('gcc', ['-O0', '-o', bin, c], { encoding: 'utf8' });
      expect(cc.status, cc.stderr).toBe(0);
      const got = new Map(spawnSync(bin, [], { encoding: 'utf8' }).stdout.trim().split('\n').map((l) => l.split(' ') as [string, string]));
      const n = (k: string): number => Number(got.get(k));
      expect(fadump_section.size).toBe(n('fadump_section'));
      expect(fadump_section_header.size).toBe(n('fadump_section_header'));
      expect(fadump_mem_struct.size).toBe(n('fadump_mem_struct'));
      expect(fadump_reg_save_area_header.size).toBe(n('fadump_reg_save_area_header'));
      expect(fadump_reg_entry.size).toBe(n('fadump_reg_entry'));
      expect(fadump_crash_info_header.size).toBe(n('fadump_crash_info_header'));
      expect(fadump_section.offsetOf.source_address).toBe(n('fadump_section.source_address'));
      expect(fadump_section.offsetOf.destination_address).toBe(n('fadump_section.destination_address'));
      expect(fadump_section_header.offsetOf.dd_block_offset).toBe(n('fadump_section_header.dd_block_offset'));
      expect(fadump_section_header.offsetOf.max_time_auto).toBe(n('fadump_section_header.max_time_auto'));
      expect(fadump_mem_struct.offsetOf.cpu_state_data).toBe(n('fadump_mem_struct.cpu_state_data'));
      expect(fadump_mem_struct.offsetOf.hpte_region).toBe(n('fadump_mem_struct.hpte_region'));
      expect(fadump_mem_struct.offsetOf.rmr_region).toBe(n('fadump_mem_struct.rmr_region'));
      expect(fadump_crash_info_header.offsetOf.crashing_cpu).toBe(n('fadump_crash_info_header.crashing_cpu'));
      expect(fadump_crash_info_header.offsetOf.regs).toBe(n('fadump_crash_info_header.regs'));
      expect(fadump_crash_info_header.offsetOf.online_mask).toBe(n('fadump_crash_info_header.online_mask'));
      // The kernel's members of fw_dump, then our two: the bitfields share the long after the int.
      expect(fw_dump.offsetOf.ibm_configure_kernel_dump).toBe(n('fw_dump.ibm_configure_kernel_dump'));
      expect(fw_dump.offsetOf.flags).toBe(n('fw_dump.ibm_configure_kernel_dump') + 4);
    } finally {
      removeTempDir(dir);
    }
  });
});

describe('the magics', () => {
  it('fadump_str_to_u64 packs the first character into the top byte: FADMPINF is 0x4641444d50494e46', () => {
    expect(FADUMP_CRASH_INFO_MAGIC).toBe(0x4641444d50494e46n);
    expect(REGSAVE_AREA_MAGIC).toBe(0x5245475341564500n);
    expect(fadumpStrToU64('CPUEND')).toBe(0x435055454e440000n);
  });
  it('stored natively on x86_64 (little-endian) the bytes in RAM read FNIPMDAF, as on ppc64le', () => {
    const b = Buffer.from(fadump_crash_info_header.toBytes({ ...fadump_crash_info_header.zero(), magic_number: FADUMP_CRASH_INFO_MAGIC }));
    expect(b.subarray(0, 8).toString('latin1')).toBe('FNIPMDAF');
  });
});

describe('boot memory size (fadump_calculate_reserve_size)', () => {
  const big = configForRam(G);
  it('5% of RAM rounded down to 256 MiB, at least 256 MiB from 1 GiB up', () => {
    expect(fadumpCalculateReserveSize('root=/dev/vda1', G, G, big, 0n).size).toBe(256n * MiB);
    expect(fadumpCalculateReserveSize('', 8n * G, 8n * G, big, 0n).size).toBe(256n * MiB);
    // 16 GiB / 20 = 819.2 MiB, rounded down to a multiple of 256 MiB.
    expect(fadumpCalculateReserveSize('', 16n * G, 16n * G, big, 0n).size).toBe(768n * MiB);
    expect(fadumpCalculateReserveSize('', 12n * G, 12n * G, big, 0n).size).toBe(512n * MiB);
  });
  it('crashkernel= wins (its offset ignored), then fadump_reserve_mem=', () => {
    expect(fadumpCalculateReserveSize('crashkernel=100M@64M', G, G, big, 48n * MiB)).toEqual({ size: 100n * MiB, from: 'crashkernel=' });
    expect(fadumpCalculateReserveSize('crashkernel=512M-2G:64M,2G-:128M', G, G, big, 0n).size).toBe(64n * MiB);
    expect(fadumpCalculateReserveSize('', G, G, big, 48n * MiB)).toEqual({ size: 48n * MiB, from: 'fadump_reserve_mem=' });
  });
  it('below 1 GiB the 256 MiB minimum scales to a quarter of RAM, never below what a capture boot lays down plus 1 MiB', () => {
    expect(fadumpMinBootMem(512n * MiB, configForRam(512n * MiB))).toBe(128n * MiB);
    expect(fadumpMinBootMem(128n * MiB, configForRam(128n * MiB))).toBe(32n * MiB);
    // 64 MiB: a quarter is 16 MiB, but the kernel at 16 MiB, its image, a 1 MiB mem_map and 64 early pages,
    // plus 1 MiB to run in, need more: rounded up to a MiB.
    const c64 = configForRam(64n * MiB);
    const image = BigInt(kernelLayout(c64).imageSize);
    const need = c64.physicalStart + ((image + 4095n) / 4096n) * 4096n + MiB + 64n * 4096n + MiB;
    expect(fadumpMinBootMem(64n * MiB, c64)).toBe(((need + MiB - 1n) / MiB) * MiB);
    expect(fadumpMinBootMem(64n * MiB, c64) > 16n * MiB).toBe(true);
  });
});

/** A register save area as PAPR describes it: header, u32 CPU count at num_cpu_offset, CPUSTRT, registers, CPUEND per CPU. */
function regSaveArea(cpus: Array<{ cpu: number; regs: Partial<Record<X86RegId, bigint>> }>, opts: { magic?: bigint; dropEnd?: boolean } = {}): Uint8Array {
  const id = (s: string): bigint => { let v = 0n; for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(i < s.length ? s.charCodeAt(i) : 0); return v; };
  const parts: Buffer[] = [];
  const hdr = Buffer.alloc(16);
  hdr.writeBigUInt64LE(opts.magic ?? id('REGSAVE'), 0);
  hdr.writeUInt32LE(1, 8);
  hdr.writeUInt32LE(16, 12);
  parts.push(hdr);
  const n = Buffer.alloc(4);
  n.writeUInt32LE(cpus.length);
  parts.push(n);
  const entry = (rid: bigint, v: bigint): Buffer => { const b = Buffer.alloc(16); b.writeBigUInt64LE(rid, 0); b.writeBigUInt64LE(v, 8); return b; };
  for (const c of cpus) {
    parts.push(entry(id('CPUSTRT'), BigInt(c.cpu)));
    for (const [k, v] of Object.entries(c.regs)) parts.push(entry(id(k), v as bigint));
    if (!opts.dropEnd) parts.push(entry(id('CPUEND'), BigInt(c.cpu)));
  }
  const out = new Uint8Array(4096);
  out.set(Buffer.concat(parts));
  return out;
}

/** NT_PRSTATUS notes decoded at x86_64's offsets: 12-byte header, "CORE\0" padded to 8, pr_pid at 32, pr_reg at 112 (rip index 16, rsp 19). */
function prstatusNotes(buf: Uint8Array): Array<{ pid: number; rip: bigint; rsp: bigint; rax: bigint }> {
  const b = Buffer.from(buf);
  const out: Array<{ pid: number; rip: bigint; rsp: bigint; rax: bigint }> = [];
  let at = 0;
  while (at + 12 <= b.length && b.readUInt32LE(at) !== 0) {
    const namesz = b.readUInt32LE(at);
    const descsz = b.readUInt32LE(at + 4);
    expect(b.readUInt32LE(at + 8)).toBe(1);
    expect(b.subarray(at + 12, at + 12 + namesz).toString('latin1')).toBe('CORE\0');
    const desc = at + 12 + ((namesz + 3) & ~3);
    const reg = desc + 112;
    out.push({ pid: b.readInt32LE(desc + 32), rip: b.readBigUInt64LE(reg + 16 * 8), rsp: b.readBigUInt64LE(reg + 19 * 8), rax: b.readBigUInt64LE(reg + 10 * 8) });
    at = desc + ((descsz + 3) & ~3);
  }
  return out;
}

describe('CPU notes from the register save area (fadump_build_cpu_notes)', () => {
  const saved = { RAX: 0x1111n, RIP: 0xffffffff81abcdefn, RSP: 0xffffc90000123f00n, RFLAGS: 0x46n, CR3: 0x1210000n };
  const header = (crashing: number) => ({
    ...fadump_crash_info_header.zero(), magic_number: FADUMP_CRASH_INFO_MAGIC, crashing_cpu: crashing,
    regs: { ...pt_regs.zero(), ip: 0xffffffff81000123n, sp: 0xffffc90000100000n, ax: 7n }, online_mask: { bits: [1n] },
  });

  it('the crashing CPU\'s registers come from the crash info header, not from the save area', () => {
    const notes = prstatusNotes(fadumpBuildCpuNotes(regSaveArea([{ cpu: 0, regs: saved }]), header(0), 4096));
    expect(notes).toEqual([{ pid: 0, rip: 0xffffffff81000123n, rsp: 0xffffc90000100000n, rax: 7n }]);
  });

  it('a CPU that is not the crashing one (crashing_cpu CPU_UNKNOWN: a dump the firmware started) gets the save area\'s registers', () => {
    const notes = prstatusNotes(fadumpBuildCpuNotes(regSaveArea([{ cpu: 0, regs: saved }]), header(CPU_UNKNOWN), 4096));
    expect(notes).toEqual([{ pid: 0, rip: saved.RIP, rsp: saved.RSP, rax: saved.RAX }]);
  });

  it('CPUs outside the online mask are skipped; every x86_64 id is understood', () => {
    const all = Object.fromEntries(X86_64_REG_IDS.map((r, i) => [r, BigInt(i + 1)])) as Record<X86RegId, bigint>;
    const notes = prstatusNotes(fadumpBuildCpuNotes(regSaveArea([{ cpu: 0, regs: all }, { cpu: 1, regs: saved }]), header(CPU_UNKNOWN), 4096));
    expect(notes).toHaveLength(1);
    expect(notes[0].rip).toBe(all.RIP);
    expect(notes[0].rax).toBe(all.RAX);
  });

  it('a save area without the REGSAVE magic, or a CPU without CPUEND, is refused with the kernel\'s line', () => {
    expect(() => fadumpBuildCpuNotes(regSaveArea([{ cpu: 0, regs: saved }], { magic: 0n }), header(0), 4096)).toThrow('Unable to read register save area.');
    const noEnd = regSaveArea([{ cpu: 0, regs: saved }], { dropEnd: true });
    expect(() => fadumpBuildCpuNotes(noEnd.subarray(0, 20 + 16 * 6), header(0), 4096)).toThrow('Unable to read CPU state data');
  });
});

describe('the firmware: ibm,configure-kernel-dump and ibm,os-term', () => {
  let dir: string;
  let root: MachineRoot;
  let ram: PhysicalRam;
  const size = 64n * MiB;
  beforeAll(() => {
    dir = makeTempDir('fadump-fw');
    root = new MachineRoot(dir);
    root.prepare();
    ram = PhysicalRam.create(root.ramPath, size, { journal: false });
    // Boot memory [0, 8M) holds a pattern the copy must carry.
    for (let p = 0n; p < 8n * MiB; p += MiB) ram.write(p, Buffer.alloc(Number(MiB), Number(p / MiB) + 1));
  });
  afterAll(() => { ram?.close(); removeTempDir(dir); });

  const fw = { ...fw_dump.zero(), cpu_state_data_size: kernelDumpSizes().cpuStateData, hpte_region_size: 0n, boot_memory_size: 8n * MiB };
  const regs = Object.fromEntries(X86_64_REG_IDS.map((r) => [r, 0x40n])) as Record<X86RegId, bigint>;

  it('registers a well-formed structure once (-9 the second time); refuses a bad version or overlapping sections (-3)', () => {
    const firmware = new PlatformFirmware(root, ram);
    const { fdm } = initFadumpMemStruct(fw, 32n * MiB);
    expect(firmware.configureKernelDump(FADUMP_REGISTER, { ...fdm, header: { ...fdm.header, dump_format_version: 2 } })).toBe(RTAS_OUT_PARAM_ERROR);
    const overlap = initFadumpMemStruct(fw, 4n * MiB).fdm;
    expect(firmware.configureKernelDump(FADUMP_REGISTER, overlap)).toBe(RTAS_OUT_PARAM_ERROR);
    expect(firmware.configureKernelDump(FADUMP_REGISTER, fdm)).toBe(RTAS_OUT_SUCCESS);
    expect(firmware.configureKernelDump(FADUMP_REGISTER, fdm)).toBe(RTAS_OUT_DUMP_ALREADY_REGISTERED);
    expect(firmware.configureKernelDump(FADUMP_UNREGISTER, fdm)).toBe(RTAS_OUT_SUCCESS);
    expect(readHardwareFile(root, FW_REGISTRATION)).toBeNull();
    expect(firmware.osTerm([{ cpu: 0, regs }])).toBeNull();
  });

  it('at os-term: the register save area, boot memory copied, bytes_dumped filled, the property set; registering is refused until INVALIDATE (-10)', () => {
    const firmware = new PlatformFirmware(root, ram);
    const { fdm } = initFadumpMemStruct(fw, 32n * MiB);
    expect(firmware.configureKernelDump(FADUMP_REGISTER, fdm)).toBe(RTAS_OUT_SUCCESS);
    const done = firmware.osTerm([{ cpu: 0, regs }])!;
    expect(done.rmr_region.bytes_dumped).toBe(8n * MiB);
    expect(done.cpu_state_data.bytes_dumped > 0n).toBe(true);
    expect(done.header.dump_status_flag & 0x2000).toBe(0);
    const dest = fdm.rmr_region.destination_address;
    for (let p = 0n; p < 8n * MiB; p += MiB) expect(ram.read(dest + p, Number(MiB)).equals(Buffer.alloc(Number(MiB), Number(p / MiB) + 1))).toBe(true);
    const area = ram.read(fdm.cpu_state_data.destination_address, 64);
    expect(area.subarray(0, 8).readBigUInt64LE(0)).toBe(REGSAVE_AREA_MAGIC);
    expect(readHardwareFile(root, FW_KERNEL_DUMP_PROPERTY)!.length).toBe(fadump_mem_struct.size);
    expect(readHardwareFile(root, FW_REGISTRATION)).toBeNull();
    expect(firmware.configureKernelDump(FADUMP_REGISTER, fdm)).toBe(RTAS_OUT_DUMP_ACTIVE);
    firmware.boot('warm');
    expect(firmware.kernelDumpProperty()).not.toBeNull();
    expect(firmware.configureKernelDump(FADUMP_INVALIDATE, fdm)).toBe(RTAS_OUT_SUCCESS);
    expect(firmware.kernelDumpProperty()).toBeNull();
    expect(firmware.configureKernelDump(FADUMP_REGISTER, fdm)).toBe(RTAS_OUT_SUCCESS);
    firmware.boot('cold');
    expect(firmware.registration()).toBeNull();
  });
});
