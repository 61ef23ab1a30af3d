/**
 * Writes an ELF64 x86_64 crash dump shaped like /proc/vmcore, in the layout
 * that crash, makedumpfile, vmcore-dmesg, readelf and gdb all accept:
 *
 *   Elf64_Ehdr
 *   Elf64_Phdr[0]     PT_NOTE   (crash takes phdr[0] as the notes)
 *   Elf64_Phdr[1..n]  PT_LOAD   p_align 0, RWX, filesz == memsz
 *   notes             device dumps ("LINUX"/NT_VMCOREDD, as /proc/vmcore puts them first), then
 *                     "CORE"/NT_PRSTATUS per CPU, then "VMCOREINFO"/type 0
 *   zero fill to the next 4 KiB boundary
 *   load data         each PT_LOAD's bytes, one after the other
 *
 * The data is streamed in chunks of at most VMCORE_CHUNK_SIZE; chunks (and,
 * inside the others, 4 KiB pages) that are entirely zero are not written, so
 * they stay holes in a file that was first extended to its full length.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  UsageError, hex, toSafeNumber, viewOf, wrapError,
} from '../../codec/index.js';
import { checkOutputPath, fsyncDir, temporaryBeside, type ProtectedPath } from '../../machine/index.js';
import {
  CORE_NOTE_NAME, Elf64_Ehdr, Elf64_Nhdr, Elf64_Phdr, ELF_NOTE_ALIGN, elf_prstatus, encodeCoreEhdr, NT_PRSTATUS, PF_R,
  PF_W, PF_X, PN_XNUM, PT_LOAD, PT_NOTE, user_regs_struct, VMCOREINFO_NOTE_NAME, VMCOREINFO_NOTE_TYPE, type Elf64Phdr,
  type UserRegName,
} from '../../codec/elf.js';

/** Alignment of the first PT_LOAD's data in the file. */
export const VMCORE_DATA_ALIGN = 4096n;
/** Largest piece of RAM read, checked and written at once. */
export const VMCORE_CHUNK_SIZE = 1 << 20;

const U64_LIMIT = 1n << 64n;

/** One PT_LOAD segment: `size` bytes of RAM at `paddr`, mapped at `vaddr`. */
export interface VmcoreLoad {
  vaddr: bigint;
  paddr: bigint;
  size: bigint;
}

/** Register state of one CPU, written as an NT_PRSTATUS note. */
export interface PrStatus {
  pid: number;
  /** Registers by user_regs_struct name; a missing register is written as 0. */
  regs: Partial<Record<UserRegName, bigint>>;
}

export interface VmcoreSpec {
  /** PT_LOADs, in program header order (after the PT_NOTE). */
  loads: VmcoreLoad[];
  /** "KEY=VALUE\n" lines, stored in a note named VMCOREINFO with n_type 0. */
  vmcoreinfo: string;
  /** One NT_PRSTATUS "CORE" note per CPU, placed before the VMCOREINFO note. */
  prstatus?: PrStatus[];
  /** Whole NT_VMCOREDD notes (vmcoredd_header, then the data), placed before every other note. */
  deviceDumps?: readonly Uint8Array[];
  /** Fills every byte of `out` with RAM at `paddr` (out.length <= VMCORE_CHUNK_SIZE). */
  readPhys(paddr: bigint, out: Uint8Array): void;
  /** Called after each chunk with the load bytes done so far and in total. */
  onProgress?(doneBytes: bigint, totalBytes: bigint): void;
  /** Files the output must not replace: the command's inputs, the machine's own files (see checkOutputPath). */
  protect?: readonly ProtectedPath[];
}

export interface VmcoreResult {
  /** Length of the file. */
  bytes: bigint;
  /** File offset of the first PT_LOAD's data. */
  dataOffset: bigint;
}

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** Encodes one ELF note (header, NUL-terminated name, descriptor, padding). */
function encodeNote(name: string, type: number, desc: Uint8Array): Uint8Array {
  const nameBytes = Buffer.from(`${name}\0`, 'latin1');
  const nameEnd = Elf64_Nhdr.size + align(nameBytes.length, ELF_NOTE_ALIGN);
  const out = new Uint8Array(nameEnd + align(desc.length, ELF_NOTE_ALIGN));
  Elf64_Nhdr.encode({ n_namesz: nameBytes.length, n_descsz: desc.length, n_type: type }, viewOf(out));
  out.set(nameBytes, Elf64_Nhdr.size);
  out.set(desc, nameEnd);
  return out;
}

function encodePrstatus(cpu: number, status: PrStatus): Uint8Array {
  if (!Number.isInteger(status.pid) || status.pid < -(2 ** 31) || status.pid >= 2 ** 31) {
    throw new UsageError(`prstatus[${cpu}].pid ${status.pid} is not a 32-bit integer`);
  }
  const pr = elf_prstatus.zero();
  pr.pr_pid = status.pid;
  for (const [name, value] of Object.entries(status.regs) as Array<[string, bigint | undefined]>) {
    if (!(name in user_regs_struct.offsetOf)) {
      throw new UsageError(`prstatus[${cpu}].regs: unknown register '${name}'`);
    }
    if (value === undefined) continue;
    if (value < 0n || value >= U64_LIMIT) {
      throw new UsageError(`prstatus[${cpu}].regs.${name} ${value} does not fit in 64 bits`);
    }
    pr.pr_reg[name as UserRegName] = value;
  }
  return elf_prstatus.toBytes(pr);
}

/**
 * The bytes of the PT_NOTE segment: the device dumps' notes, one "CORE"
 * NT_PRSTATUS note per CPU, then the "VMCOREINFO" note (n_type 0, the text
 * without a NUL).
 */
export function buildNotes(spec: Pick<VmcoreSpec, 'vmcoreinfo' | 'prstatus' | 'deviceDumps'>): Uint8Array {
  const notes = [...(spec.deviceDumps ?? []), ...(spec.prstatus ?? []).map((status, cpu) =>
    encodeNote(CORE_NOTE_NAME, NT_PRSTATUS, encodePrstatus(cpu, status)))];
  notes.push(encodeNote(VMCOREINFO_NOTE_NAME, VMCOREINFO_NOTE_TYPE, Buffer.from(spec.vmcoreinfo, 'utf8')));
  return Buffer.concat(notes);
}

function checkLoads(loads: readonly VmcoreLoad[]): void {
  if (loads.length === 0) throw new UsageError('a vmcore needs at least one PT_LOAD');
  // e_phnum is 16 bits and PN_XNUM is reserved; one entry is the PT_NOTE.
  if (loads.length + 1 >= PN_XNUM) {
    throw new UsageError(`${loads.length} PT_LOADs do not fit in e_phnum (at most ${PN_XNUM - 2})`);
  }
  loads.forEach((l, i) => {
    for (const key of ['vaddr', 'paddr', 'size'] as const) {
      if (l[key] < 0n || l[key] >= U64_LIMIT) {
        throw new UsageError(`loads[${i}].${key} ${l[key]} does not fit in 64 bits`);
      }
    }
    for (const key of ['vaddr', 'paddr'] as const) {
      if (l[key] + l.size > U64_LIMIT) {
        throw new UsageError(`loads[${i}]: ${key} ${hex(l[key])} + size ${hex(l.size)} wraps past 2^64`);
      }
    }
  });
}

/** Encodes the ELF header, the program header table and the notes. */
function buildHeader(loads: readonly VmcoreLoad[], notes: Uint8Array): { header: Uint8Array; dataOffset: bigint } {
  const phnum = loads.length + 1;
  const phoff = Elf64_Ehdr.size;
  const noteOffset = phoff + phnum * Elf64_Phdr.size;
  const headerEnd = noteOffset + notes.length;
  const dataOffset = align(headerEnd, Number(VMCORE_DATA_ALIGN));

  const header = new Uint8Array(headerEnd);
  const view = viewOf(header);

  encodeCoreEhdr(view, phnum);

  const phdrs: Elf64Phdr[] = [{
    p_type: PT_NOTE,
    p_flags: 0,
    p_offset: BigInt(noteOffset),
    p_vaddr: 0n,
    p_paddr: 0n,
    p_filesz: BigInt(notes.length),
    p_memsz: BigInt(notes.length),
    p_align: 0n,
  }];
  let offset = BigInt(dataOffset);
  for (const l of loads) {
    phdrs.push({
      p_type: PT_LOAD,
      p_flags: PF_R | PF_W | PF_X,
      p_offset: offset,
      p_vaddr: l.vaddr,
      p_paddr: l.paddr,
      p_filesz: l.size,
      p_memsz: l.size,
      // 0, not a page size: crash takes a page-aligned PT_LOAD with p_align
      // set for a netdump file rather than a kdump vmcore.
      p_align: 0n,
    });
    offset += l.size;
  }
  phdrs.forEach((ph, i) => Elf64_Phdr.encode(ph, view, phoff + i * Elf64_Phdr.size));
  header.set(notes, noteOffset);
  return { header, dataOffset: BigInt(dataOffset) };
}

function writeFully(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done, position + done);
}

/**
 * Writes the pages of `piece` that hold a non-zero byte, coalescing runs of
 * them into one write; zero pages are skipped and stay holes. Data offsets
 * are page-aligned, so the holes line up with file system blocks.
 */
function writeNonZeroPages(fd: number, piece: Buffer, zeros: Buffer, position: number): void {
  const page = Number(VMCORE_DATA_ALIGN);
  let runStart = -1;
  for (let at = 0; at < piece.length; at += page) {
    const end = Math.min(at + page, piece.length);
    const zero = piece.subarray(at, end).equals(zeros.subarray(0, end - at));
    if (!zero && runStart < 0) runStart = at;
    if (zero && runStart >= 0) {
      writeFully(fd, piece.subarray(runStart, at), position + runStart);
      runStart = -1;
    }
  }
  if (runStart >= 0) writeFully(fd, piece.subarray(runStart), position + runStart);
}

/** Streams every load's bytes after `dataOffset`, leaving all-zero chunks and pages as holes. */
function writeLoads(fd: number, spec: VmcoreSpec, dataOffset: bigint, totalData: bigint): void {
  const chunk = Buffer.allocUnsafe(VMCORE_CHUNK_SIZE);
  const zeros = Buffer.alloc(VMCORE_CHUNK_SIZE);
  let fileOffset = dataOffset;
  let done = 0n;
  spec.loads.forEach((load, i) => {
    for (let at = 0n; at < load.size;) {
      const n = Number(load.size - at < BigInt(VMCORE_CHUNK_SIZE) ? load.size - at : BigInt(VMCORE_CHUNK_SIZE));
      const piece = chunk.subarray(0, n);
      const paddr = load.paddr + at;
      try {
        spec.readPhys(paddr, piece);
      } catch (e) {
        throw wrapError(`reading RAM at ${hex(paddr)} for PT_LOAD ${i + 1}`, e);
      }
      if (!piece.equals(zeros.subarray(0, n))) {
        writeNonZeroPages(fd, piece, zeros, toSafeNumber(fileOffset, 'file offset'));
      }
      at += BigInt(n);
      fileOffset += BigInt(n);
      done += BigInt(n);
      spec.onProgress?.(done, totalData);
    }
  });
}

/**
 * Writes `spec` as an ELF vmcore to `file`, atomically: a temporary sibling
 * (mode 0600) is filled, fsynced and renamed over `file`, then the directory
 * is fsynced. On failure the temporary is removed and `file` is untouched.
 * `file` is checked first by checkOutputPath against `spec.protect`.
 */
export function writeVmcore(file: string, spec: VmcoreSpec): VmcoreResult {
  checkLoads(spec.loads);
  const notes = buildNotes(spec);
  const { header, dataOffset } = buildHeader(spec.loads, notes);
  const totalData = spec.loads.reduce((sum, l) => sum + l.size, 0n);
  const bytes = dataOffset + totalData;
  const length = toSafeNumber(bytes, `vmcore size`);

  // Resolved (a link is written through to its file) and refused over an input, a FIFO or a device.
  const target = checkOutputPath(file, spec.protect ?? []);
  const dir = path.dirname(target);
  const tmp = temporaryBeside(target);

  let fd: number | undefined;
  let created = false;
  try {
    fd = fs.openSync(tmp, 'wx', 0o600);
    created = true;
    fs.ftruncateSync(fd, length);
    writeFully(fd, header, 0);
    writeLoads(fd, spec, dataOffset, totalData);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, target);
    created = false;
    fsyncDir(dir);
  } catch (e) {
    if (fd !== undefined) {
      try { fs.closeSync(fd); } catch { /* already failing; the first error is the one to report */ }
    }
    if (created) {
      try { fs.unlinkSync(tmp); } catch { /* best effort: the error below is what matters */ }
    }
    throw wrapError(`writing ${file}`, e);
  }
  return { bytes, dataOffset };
}
