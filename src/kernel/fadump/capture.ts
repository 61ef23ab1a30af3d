/**
 * The capture boot and the release of firmware-assisted dump
 * (setup_fadump, process_fadump, fadump_build_cpu_notes,
 * fadump_invalidate_release_mem, fadump_release_memory, fadump_cleanup):
 * a kernel booted by the firmware after a crash checks what the firmware
 * did, checks the crash info header, turns the register save area into
 * NT_PRSTATUS notes and hands the ELF core header to /proc/vmcore; once
 * the dump is saved, `echo 1 > release_mem` gives the memory back without
 * a second reboot.
 */
import {
  CorruptDumpError, UsageError, Elf64_Ehdr, Elf64_Phdr, NT_PRSTATUS, PT_NOTE, elf_prstatus, encodeElfNote, hex, viewOf,
  type UserRegName,
} from '../../codec/index.js';
import {
  FADUMP_CPU_ID_MASK, FADUMP_ERROR_FLAG, fadump_mem_struct, fadump_reg_entry, fadump_reg_save_area_header, fadumpStrToU64,
  PAGE_SIZE_N, usablePfnRanges, REG_ID_CPUEND, REG_ID_CPUSTRT, REGSAVE_AREA_MAGIC, type PlatformFirmware,
  type X86RegId,
} from '../../machine/index.js';
import { ELFCORE_ADDR_MAX, LOGLEVEL_ERR, NR_CPUS, PG_reserved, pageFlag } from '../constants.js';
import { PT_REGS_TO_USER_REGS } from '../crash_core.js';
import type { Kernel } from '../kernel.js';
import { blankPage, splitIntoBlocks, type BuddyAllocator } from '../mm/buddy.js';
import type { MemMap } from '../mm/mem_map.js';
import { printk } from '../printk.js';
import { CRASH_CORE_NOTE_BYTES, KEXEC_CORE_NOTE_NAME } from '../structs/crash_notes.js';
import { pt_regs, type PtRegs } from '../structs/pt_regs.js';
import { vmcoreCleanup } from '../vmcore/proc_vmcore.js';
import { VMCORE_MAX_PHNUM } from '../vmcore/vmcore.js';
import { FADUMP_CRASH_INFO_MAGIC } from './constants.js';
import { fadumpInvalidateDump, fadumpInitRegistration, fadumpUnregisterDump, initFadumpMemStruct } from './register.js';
import { fadumpAreaSize } from './reserve.js';
import { dumpActive, dumpRegistered, fadumpEnabled, fadumpSupported, readFdm, readFwDump, writeFdm, writeFwDump } from './state.js';
import { fadump_crash_info_header, FW_DUMP_ACTIVE, FW_DUMP_RELEASE_FILE, type FadumpCrashInfoHeader } from './structs.js';
import { readE820 } from '../e820.js';

/** Most bytes of CPU state data the capture boot reads (the firmware asks for a page per handful of CPUs). */
const MAX_CPU_STATE_BYTES = 1 << 20;

/** x86_64 register id -> pt_regs member, for fadump_set_regval(). */
const REG_TO_PT_REGS: Partial<Record<X86RegId, keyof PtRegs>> = {
  RAX: 'ax', RBX: 'bx', RCX: 'cx', RDX: 'dx', RSI: 'si', RDI: 'di', RBP: 'bp', RSP: 'sp',
  R8: 'r8', R9: 'r9', R10: 'r10', R11: 'r11', R12: 'r12', R13: 'r13', R14: 'r14', R15: 'r15',
  RIP: 'ip', RFLAGS: 'flags', CS: 'cs', SS: 'ss',
};
const PT_REGS_BY_ID = new Map<bigint, keyof PtRegs>(
  (Object.entries(REG_TO_PT_REGS) as Array<[X86RegId, keyof PtRegs]>).map(([id, m]) => [fadumpStrToU64(id), m]),
);

/** Why the capture boot could not use the dump: the kernel's one line. */
class FadumpInvalid extends CorruptDumpError {
  constructor(line: string) {
    super(line, { struct: 'fadump_crash_info_header' });
  }
}

function reservedPage(): ReturnType<typeof blankPage> {
  return { ...blankPage(), flags: pageFlag(PG_reserved), _refcount: 1 };
}

function orderFor(bytes: bigint): number {
  let order = 0;
  while ((PAGE_SIZE_N << BigInt(order)) < bytes) order++;
  return order;
}

/** __get_free_pages() + SetPageReserved, as fadump_cpu_notes_buf_alloc() does. */
function allocReserved(buddy: BuddyAllocator, memmap: MemMap, bytes: bigint, what: string): bigint {
  const order = orderFor(bytes);
  const pfn = buddy.allocOrThrow(order, what);
  for (let i = 0n; i < 1n << BigInt(order); i++) memmap.set(pfn + i, reservedPage());
  return pfn * PAGE_SIZE_N;
}

function freeReserved(buddy: BuddyAllocator, paddr: bigint, bytes: bigint): void {
  buddy.free(paddr / PAGE_SIZE_N, orderFor(bytes));
}

function pfnOrderBytes(bytes: bigint): bigint {
  return PAGE_SIZE_N << BigInt(orderFor(bytes));
}

/** fadump_regs_to_elf_notes(): an NT_PRSTATUS note (pr_pid 0: the firmware does not know tasks). */
function regsToNote(regs: PtRegs): Uint8Array {
  const pr = elf_prstatus.zero();
  for (const [name, user] of Object.entries(PT_REGS_TO_USER_REGS) as Array<[keyof PtRegs, UserRegName]>) pr.pr_reg[user] = regs[name];
  return encodeElfNote(KEXEC_CORE_NOTE_NAME, NT_PRSTATUS, elf_prstatus.toBytes(pr));
}

/**
 * fadump_build_cpu_notes(): walks the register save area (REGSAVE, the
 * CPU count at num_cpu_offset, then CPUSTRT ... CPUEND per CPU) within the
 * bytes the firmware dumped, and writes one NT_PRSTATUS per CPU in the
 * online mask: the crashing CPU's registers from the crash info header,
 * the others' from the save area. Returns the notes (final note included,
 * the buffer zero-padded to `bufSize`).
 */
export function fadumpBuildCpuNotes(area: Uint8Array, fdh: FadumpCrashInfoHeader | null, bufSize: number): Uint8Array {
  const view = viewOf(area);
  if (area.length < fadump_reg_save_area_header.size + 4) throw new FadumpInvalid('Unable to read register save area.');
  const hdr = fadump_reg_save_area_header.decode(view, 0);
  if (hdr.magic_number !== REGSAVE_AREA_MAGIC) throw new FadumpInvalid('Unable to read register save area.');
  if (hdr.num_cpu_offset + 4 > area.length) throw new FadumpInvalid('Unable to read CPU state data');
  const numCpus = view.getUint32(hdr.num_cpu_offset, true);
  let at = hdr.num_cpu_offset + 4;
  const entries = Math.floor((area.length - at) / fadump_reg_entry.size);
  if (numCpus > entries / 2) throw new FadumpInvalid('Unable to read CPU state data');
  const entry = (): { reg_id: bigint; reg_value: bigint } => {
    if (at + fadump_reg_entry.size > area.length) throw new FadumpInvalid('Unable to read CPU state data');
    const e = fadump_reg_entry.decode(view, at);
    at += fadump_reg_entry.size;
    return e;
  };
  const notes: Uint8Array[] = [];
  for (let i = 0; i < numCpus; i++) {
    const start = entry();
    if (start.reg_id !== REG_ID_CPUSTRT) throw new FadumpInvalid('Unable to read CPU state data');
    const cpu = Number(start.reg_value & FADUMP_CPU_ID_MASK);
    const online = fdh === null || (cpu < NR_CPUS && ((fdh.online_mask.bits[cpu >> 6] >> BigInt(cpu & 63)) & 1n) === 1n);
    // fadump_read_registers() / SKIP_TO_NEXT_CPU: up to CPUEND, bounded by the area.
    const regs = pt_regs.zero();
    for (let e = entry(); e.reg_id !== REG_ID_CPUEND; e = entry()) {
      const m = PT_REGS_BY_ID.get(e.reg_id);
      if (m) regs[m] = e.reg_value;
    }
    if (!online) continue;
    notes.push(regsToNote(fdh !== null && fdh.crashing_cpu === cpu ? fdh.regs : regs));
  }
  const total = notes.reduce((n, b) => n + b.length, 0);
  if (total + 12 > bufSize) throw new FadumpInvalid('Unable to read CPU state data');
  const out = new Uint8Array(bufSize);
  let o = 0;
  for (const n of notes) { out.set(n, o); o += n.length; }
  return out;
}

/**
 * process_fadump(): the firmware's verdict on each section, the crash
 * info header, the CPU notes; then the ELF core header, copied into this
 * kernel's memory with its CPU-notes PT_NOTE filled in. Returns where the
 * copy is; throws FadumpInvalid with the kernel's line.
 */
function processFadump(kernel: Kernel, memmap: MemMap, buddy: BuddyAllocator): { addr: bigint; size: bigint } {
  const fw = readFwDump(kernel);
  const fdm = readFdm(kernel, 'fdm_active');
  if (fw.fadumphdr_addr === 0n) throw new FadumpInvalid('Crash info header is not valid.');
  if ((fdm.header.dump_status_flag & FADUMP_ERROR_FLAG) !== 0 || fdm.cpu_state_data.error_flags !== 0 || fdm.rmr_region.error_flags !== 0) {
    throw new FadumpInvalid('Dump taken by platform is not valid');
  }
  if (fdm.rmr_region.bytes_dumped !== fdm.rmr_region.source_len || fdm.cpu_state_data.bytes_dumped === 0n) {
    throw new FadumpInvalid('Dump taken by platform is incomplete');
  }
  const ram = kernel.ram.size;
  if (fw.fadumphdr_addr + BigInt(fadump_crash_info_header.size) > ram) throw new FadumpInvalid('Crash info header is not valid.');
  const fdh = kernel.readPhysStruct(fadump_crash_info_header, fw.fadumphdr_addr);
  if (fdh.magic_number !== FADUMP_CRASH_INFO_MAGIC) throw new FadumpInvalid('Crash info header is not valid.');

  const cpu = fdm.cpu_state_data;
  if (cpu.bytes_dumped > BigInt(MAX_CPU_STATE_BYTES) || cpu.destination_address + cpu.bytes_dumped > ram) throw new FadumpInvalid('Unable to read register save area.');
  const area = kernel.ram.read(cpu.destination_address, Number(cpu.bytes_dumped));
  // One note_buf_t per possible CPU, page aligned (CPUs outside the online mask get none).
  const notesSize = (BigInt(NR_CPUS * CRASH_CORE_NOTE_BYTES) + PAGE_SIZE_N - 1n) / PAGE_SIZE_N * PAGE_SIZE_N;
  const notes = fadumpBuildCpuNotes(area, fdh, Number(notesSize));

  // The ELF core header the first kernel wrote, bounded by the ELF header and the area it lies in.
  const elfAddr = fdh.elfcorehdr_addr;
  const areaEnd = fw.reserve_dump_area_start + fw.reserve_dump_area_size;
  if (elfAddr < fw.fadumphdr_addr || elfAddr + BigInt(Elf64_Ehdr.size) > areaEnd) throw new FadumpInvalid(`ELF core header at ${hex(elfAddr)} is not valid.`);
  const eh = kernel.readPhysStruct(Elf64_Ehdr, elfAddr);
  const hdrBytes = BigInt(Elf64_Ehdr.size + eh.e_phnum * Elf64_Phdr.size);
  if (eh.e_phnum === 0 || eh.e_phnum > VMCORE_MAX_PHNUM || eh.e_phentsize !== Elf64_Phdr.size || elfAddr + hdrBytes > areaEnd) {
    throw new FadumpInvalid(`ELF core header at ${hex(elfAddr)} is not valid.`);
  }
  const hdr = kernel.ram.read(elfAddr, Number(hdrBytes));
  const first = Elf64_Phdr.decode(viewOf(hdr), Elf64_Ehdr.size);
  if (first.p_type !== PT_NOTE) throw new FadumpInvalid(`ELF core header at ${hex(elfAddr)} is not valid.`);

  const notesAt = allocReserved(buddy, memmap, notesSize, 'fadump cpu notes');
  kernel.ram.write(notesAt, notes);
  // fadump_update_elfcore_header(), on our copy: the first PT_NOTE describes the CPU notes.
  Elf64_Phdr.encode({ ...first, p_paddr: notesAt, p_offset: notesAt, p_filesz: notesSize, p_memsz: notesSize }, viewOf(hdr), Elf64_Ehdr.size);
  const copyAt = allocReserved(buddy, memmap, hdrBytes, 'fadump ELF core header');
  const padded = new Uint8Array(Number(pfnOrderBytes(hdrBytes)));
  padded.set(hdr);
  kernel.ram.write(copyAt, padded);
  writeFwDump(kernel, { ...readFwDump(kernel), cpu_notes_buf: notesAt, cpu_notes_buf_size: notesSize, elfcorehdr_buf: copyAt, elfcorehdr_buf_size: hdrBytes });
  return { addr: copyAt, size: hdrBytes };
}

/**
 * setup_fadump() (a subsys initcall, before /proc/vmcore's fs initcall):
 * with a dump active, process it, and if that fails log why in one line,
 * invalidate it and release the memory, so the boot goes on as a normal
 * one; without, prepare the registration. Returns the ELF core header
 * for vmcore_init(), or null.
 */
export function setupFadump(kernel: Kernel, memmap: MemMap, buddy: BuddyAllocator, firmware: PlatformFirmware | null): { addr: bigint; size: bigint } | null {
  const fw = readFwDump(kernel);
  if (!fadumpEnabled(fw) || !fadumpSupported(fw)) return null;
  let hdr: { addr: bigint; size: bigint } | null = null;
  if (dumpActive(fw)) {
    try {
      hdr = processFadump(kernel, memmap, buddy);
    } catch (e) {
      if (!(e instanceof CorruptDumpError)) throw e;
      printk(kernel, `fadump: ${e.message}`, LOGLEVEL_ERR);
      fadumpInvalidateReleaseMem(kernel, memmap, buddy, firmware);
    }
  } else {
    fadumpInitRegistration(kernel);
  }
  // fadump_init_files(): fadump_release_mem exists only when a dump was active at boot.
  const now = readFwDump(kernel);
  writeFwDump(kernel, { ...now, flags: hdr ? (now.flags | FW_DUMP_RELEASE_FILE) >>> 0 : now.flags });
  return hdr;
}

/**
 * fadump_cleanup() on the way down (reboot, kexec): a dump that was
 * active is invalidated; a registration in force is withdrawn (as kernels
 * since 4.x do on kexec), so the firmware never copies boot memory over a
 * kernel that did not ask for it.
 */
export function fadumpCleanup(kernel: Kernel, firmware: PlatformFirmware): void {
  const fw = readFwDump(kernel);
  if (!fadumpEnabled(fw) || !fadumpSupported(fw)) return;
  if (dumpActive(fw)) {
    const fdm = readFdm(kernel, 'fdm_active');
    if (fadumpInvalidateDump(kernel, firmware, initFadumpMemStruct(fw, fdm.cpu_state_data.destination_address).fdm)) {
      writeFwDump(kernel, { ...readFwDump(kernel), flags: (readFwDump(kernel).flags & ~FW_DUMP_ACTIVE) >>> 0 });
      writeFdm(kernel, 'fdm_active', fadump_mem_struct.zero());
    }
  } else if (dumpRegistered(fw)) {
    fadumpUnregisterDump(kernel, firmware);
  }
}

/**
 * fadump_invalidate_release_mem(): invalidates the dump at the firmware,
 * then frees every frame above boot memory except the area kept for the
 * next registration (where the CPU state data went), frees the CPU notes
 * and our ELF header copy, and prepares a fresh registration. Returns the
 * frames given back to the allocator.
 */
export function fadumpInvalidateReleaseMem(kernel: Kernel, memmap: MemMap, buddy: BuddyAllocator, firmware: PlatformFirmware | null): bigint {
  const fw = readFwDump(kernel);
  if (!dumpActive(fw)) return 0n;
  const dest = readFdm(kernel, 'fdm_active').cpu_state_data.destination_address;
  if (firmware) fadumpCleanup(kernel, firmware);
  const start = fw.reserve_dump_area_start;
  const end = start + fw.reserve_dump_area_size;
  const nrRegions = usablePfnRanges(readE820(kernel)).length;
  const keep = { start: dest, end: dest + fadumpAreaSize(fw.cpu_state_data_size, fw.hpte_region_size, fw.boot_memory_size, nrRegions) };
  // fadump_release_memory(): page by page in the kernel; here as the largest aligned blocks.
  let released = 0n;
  const release = (s: bigint, e: bigint): void => {
    const from = (s + PAGE_SIZE_N - 1n) / PAGE_SIZE_N;
    const to = e / PAGE_SIZE_N;
    for (const [pfn, order] of splitIntoBlocks(from, to)) {
      buddy.free(pfn, order);
      released += 1n << BigInt(order);
    }
  };
  if (keep.start > start) release(start, keep.start < end ? keep.start : end);
  if (keep.end < end) release(keep.end > start ? keep.end : start, end);
  const now = readFwDump(kernel);
  if (now.cpu_notes_buf !== 0n) freeReserved(buddy, now.cpu_notes_buf, now.cpu_notes_buf_size);
  if (now.elfcorehdr_buf !== 0n) freeReserved(buddy, now.elfcorehdr_buf, now.elfcorehdr_buf_size);
  kernel.writeU64('_totalram_pages', kernel.readU64('_totalram_pages') + released);
  const after = {
    ...now, flags: (now.flags & ~FW_DUMP_ACTIVE) >>> 0, reserve_dump_area_start: keep.start, reserve_dump_area_size: keep.end - keep.start,
    cpu_notes_buf: 0n, cpu_notes_buf_size: 0n, elfcorehdr_buf: 0n, elfcorehdr_buf_size: 0n, fadumphdr_addr: 0n,
  };
  writeFwDump(kernel, after);
  writeFdm(kernel, 'fdm_active', fadump_mem_struct.zero());
  writeFdm(kernel, 'fdm', initFadumpMemStruct(after, keep.start).fdm);
  return released;
}

/**
 * fadump_release_memory_store(): "1" takes /proc/vmcore away and releases
 * the memory; -EPERM when no dump is active, -EINVAL for anything else.
 * Ours: is_kdump_kernel() turns false (elfcorehdr_addr back to
 * ELFCORE_ADDR_MAX), so the machine is a normal kernel again.
 */
export function fadumpReleaseMemStore(kernel: Kernel, memmap: MemMap, buddy: BuddyAllocator, firmware: PlatformFirmware | undefined,
  file: string, value: string): bigint {
  const fw = readFwDump(kernel);
  if (!dumpActive(fw)) throw new UsageError(`${file}: write error: Operation not permitted (no firmware-assisted dump is active)`);
  if (value.trimStart()[0] !== '1') throw new UsageError(`${file}: write error: Invalid argument (only 1 is accepted, not ${JSON.stringify(value.trim())})`);
  vmcoreCleanup(kernel, buddy);
  kernel.writeU64('elfcorehdr_addr', ELFCORE_ADDR_MAX);
  return fadumpInvalidateReleaseMem(kernel, memmap, buddy, firmware ?? null);
}
