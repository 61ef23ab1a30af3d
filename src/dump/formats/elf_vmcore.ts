/**
 * Reader of ELF vmcores: /proc/vmcore as copied, `makedumpfile -E`,
 * `machine export-vmcore`, `lkcd export --elf` (ELF64 ET_CORE EM_X86_64).
 * Pages come from the PT_LOADs by p_paddr; bytes of a page no PT_LOAD
 * covers read as zero when another part of the page is covered (the
 * partial page at the end of a RAM range), and a page no PT_LOAD touches
 * is not in the dump. Notes: VMCOREINFO and NT_PRSTATUS.
 */
import {
  CorruptDumpError, DumpError, EI_CLASS, EI_DATA, ELFCLASS64, ELFDATA2LSB, ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, EM_X86_64,
  ET_CORE, Elf64_Ehdr, Elf64_Phdr, FaultError, PT_LOAD, PT_NOTE, TruncatedError, hex, viewOf, type Elf64Phdr,
} from '../../codec/index.js';
import { pt_regs } from '../../kernel/structs/pt_regs.js';
import { new_utsname } from '../../kernel/structs/new_utsname.js';
import { closeDumpFile, readDumpFileAt, type DeviceDumpEntry, type DumpAttributes, type DumpFile, type DumpFormatOps, type DumpIntegrity, type ProbedDump } from './types.js';
import { readVmcoreNotes, vmcoreinfoKeys, type VmcoreNotes } from './vmcore_notes.js';

const PAGE_SIZE = 4096;
const PAGE = BigInt(PAGE_SIZE);
/** PT_NOTE segments larger than this are refused rather than read (a cxgb4 device dump note alone is 32 MiB). */
const MAX_NOTE_BYTES = 64 << 20;

interface Load { paddr: bigint; vaddr: bigint; offset: bigint; filesz: bigint; memsz: bigint }

export class ElfVmcoreDump implements ProbedDump {
  readonly attrs: DumpAttributes;
  /** PT_LOADs by p_paddr, in program header order (the first to cover a byte wins). */
  readonly loads: readonly Load[];
  private readonly ranges: Array<[bigint, bigint]>;

  constructor(private readonly file: DumpFile, loads: Load[], readonly notes: VmcoreNotes) {
    this.loads = loads;
    // Page ranges [first, end) any PT_LOAD touches, merged.
    const spans = loads.filter((l) => l.memsz > 0n)
      .map((l) => [l.paddr / PAGE, (l.paddr + l.memsz + PAGE - 1n) / PAGE] as [bigint, bigint])
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.ranges = [];
    for (const [s, e] of spans) {
      const last = this.ranges[this.ranges.length - 1];
      if (last && s <= last[1]) { if (e > last[1]) last[1] = e; } else this.ranges.push([s, e]);
    }
    const info = notes.vmcoreinfo ? vmcoreinfoKeys(notes.vmcoreinfo) : new Map<string, string>();
    const uts = this.readUtsname(info);
    const pages = this.ranges.reduce((n, [s, e]) => n + Number(e - s), 0);
    this.attrs = {
      'file.format': 'elf',
      'file.description': 'ELF vmcore (ELF64 x86_64 core)',
      'arch.name': 'x86_64',
      'arch.page_size': PAGE_SIZE,
      'dump.compression': 'none',
      'dump.level': 0,
      'dump.flags': 0,
      'dump.pages': pages,
      'crash.panic_string': '',
      'crash.time': BigInt(info.get('CRASHTIME') ?? '0'),
      'crash.time_usec': 0n,
      'dump.memory_pages': this.ranges.reduce((m, [, e]) => (e > m ? e : m), 0n),
      'linux.uts.release': uts?.release ?? info.get('OSRELEASE') ?? '',
      'linux.uts.nodename': uts?.nodename ?? '',
      'linux.uts.version': uts?.version ?? '',
      'linux.uts.machine': uts?.machine ?? 'x86_64',
      'crash.current_task': 0n,
      'crash.regs': notes.prstatus[0]?.regs ?? pt_regs.zero(),
      'dump.data_offset': loads.length ? loads.reduce((m, l) => (l.offset < m ? l.offset : m), loads[0].offset) : 0n,
      'dump.truncated': false,
    };
  }

  /** init_uts_ns.name through a PT_LOAD's virtual range (as vmcore-dmesg translates), or null. */
  private readUtsname(info: Map<string, string>): ReturnType<typeof new_utsname.decode> | null {
    const sym = info.get('SYMBOL(init_uts_ns)');
    if (!sym) return null;
    const va = BigInt(`0x${sym}`) + BigInt(info.get('OFFSET(uts_namespace.name)') ?? '4');
    const l = this.loads.find((x) => va >= x.vaddr && va + BigInt(new_utsname.size) <= x.vaddr + x.filesz);
    if (!l) return null;
    const buf = new Uint8Array(new_utsname.size);
    if (readDumpFileAt(this.file, buf, l.offset + (va - l.vaddr)) !== buf.length) return null;
    return new_utsname.decode(viewOf(buf));
  }

  has(pfn: bigint): boolean {
    return this.ranges.some(([s, e]) => pfn >= s && pfn < e);
  }

  readPage(pfn: bigint): Uint8Array {
    if (!this.has(pfn)) throw new FaultError(`${this.file.path}: page ${hex(pfn * PAGE)} is not in the dump`, { address: pfn * PAGE, space: 'phys', file: this.file.path });
    const out = new Uint8Array(PAGE_SIZE);
    const start = pfn * PAGE;
    // The common case: one PT_LOAD holds the whole page in the file.
    const whole = this.loads.find((l) => l.paddr <= start && start + PAGE <= l.paddr + l.filesz);
    if (whole) {
      if (readDumpFileAt(this.file, out, whole.offset + (start - whole.paddr)) !== PAGE_SIZE) {
        throw new TruncatedError(`${this.file.path}: PT_LOAD data for page ${hex(start)} runs past the end of the file`, { file: this.file.path, offset: whole.offset + (start - whole.paddr) });
      }
      return out;
    }
    const covered = new Uint8Array(PAGE_SIZE);
    for (const l of this.loads) {
      const a = l.paddr > start ? l.paddr : start;
      const b = l.paddr + l.memsz < start + PAGE ? l.paddr + l.memsz : start + PAGE;
      if (a >= b) continue;
      for (let off = a; off < b;) {
        const i = Number(off - start);
        if (covered[i]) { off++; continue; }
        // A run of bytes this load gives that no earlier load gave.
        let j = i;
        while (j < Number(b - start) && !covered[j]) j++;
        const inLoad = off - l.paddr;
        const fileBytes = inLoad < l.filesz ? Number((l.filesz - inLoad < BigInt(j - i) ? l.filesz - inLoad : BigInt(j - i))) : 0;
        if (fileBytes > 0 && readDumpFileAt(this.file, out.subarray(i, i + fileBytes), l.offset + inLoad) !== fileBytes) {
          throw new TruncatedError(`${this.file.path}: PT_LOAD data for page ${hex(start)} runs past the end of the file`, { file: this.file.path, offset: l.offset + inLoad });
        }
        covered.fill(1, i, j);
        off = start + BigInt(j);
      }
    }
    return out;
  }

  *pages(): Iterable<bigint> {
    for (const [s, e] of this.ranges) for (let p = s; p < e; p++) yield p;
  }

  /** An ELF vmcore has no checksums and no completeness mark: what its PT_LOADs hold is the dump. */
  integrity(): DumpIntegrity {
    return { state: 'complete', checksum: 'unverified', ranges: [], problems: [], notes: ['ELF vmcores carry no checksums'] };
  }

  /** The device dumps of the LINUX/NT_VMCOREDD notes. */
  deviceDumps(): DeviceDumpEntry[] {
    return this.notes.vmcoredd;
  }

  close(): void {
    closeDumpFile(this.file);
  }
}

/** Opens an ELF64 x86_64 core file, or returns null when the file is not ELF. */
export function probeElfVmcore(file: DumpFile): ElfVmcoreDump | null {
  const eb = new Uint8Array(Elf64_Ehdr.size);
  const got = readDumpFileAt(file, eb, 0n);
  if (got < 4 || eb[0] !== ELFMAG0 || eb[1] !== ELFMAG1 || eb[2] !== ELFMAG2 || eb[3] !== ELFMAG3) return null;
  if (got < Elf64_Ehdr.size) throw new TruncatedError(`${file.path}: ELF header cut short`, { file: file.path, struct: 'Elf64_Ehdr' });
  const eh = Elf64_Ehdr.decode(viewOf(eb));
  if (eh.e_ident[EI_CLASS] !== ELFCLASS64 || eh.e_ident[EI_DATA] !== ELFDATA2LSB || eh.e_type !== ET_CORE || eh.e_machine !== EM_X86_64) {
    throw new DumpError('UNSUPPORTED', `${file.path}: an ELF file but not an x86_64 little-endian ELF64 core (class ${eh.e_ident[EI_CLASS]}, type ${eh.e_type}, machine ${eh.e_machine})`, { file: file.path, struct: 'Elf64_Ehdr' });
  }
  if (eh.e_phentsize !== Elf64_Phdr.size || eh.e_phnum === 0) {
    throw new CorruptDumpError(`${file.path}: bad program header table (e_phentsize ${eh.e_phentsize}, e_phnum ${eh.e_phnum})`, { file: file.path, struct: 'Elf64_Ehdr', field: 'e_phnum' });
  }
  const tableBytes = eh.e_phnum * Elf64_Phdr.size;
  if (eh.e_phoff + BigInt(tableBytes) > file.size) {
    throw new TruncatedError(`${file.path}: ${eh.e_phnum} program headers at ${hex(eh.e_phoff)} run past the end of the file`, { file: file.path, struct: 'Elf64_Ehdr', field: 'e_phoff' });
  }
  const table = new Uint8Array(tableBytes);
  readDumpFileAt(file, table, eh.e_phoff);
  const phdrs: Elf64Phdr[] = Array.from({ length: eh.e_phnum }, (_, i) => Elf64_Phdr.decode(viewOf(table), i * Elf64_Phdr.size));
  const loads: Load[] = [];
  const noteParts: Uint8Array[] = [];
  phdrs.forEach((ph, i) => {
    if (ph.p_offset + ph.p_filesz > file.size) {
      throw new TruncatedError(`${file.path}: program header ${i} (${hex(ph.p_offset)} +${hex(ph.p_filesz)}) runs past the end of the file (${file.size} bytes)`, { file: file.path, struct: 'Elf64_Phdr', field: 'p_filesz' });
    }
    if (ph.p_type === PT_NOTE) {
      if (ph.p_filesz > BigInt(MAX_NOTE_BYTES)) throw new CorruptDumpError(`${file.path}: PT_NOTE of ${ph.p_filesz} bytes`, { file: file.path, struct: 'Elf64_Phdr', field: 'p_filesz' });
      const buf = new Uint8Array(Number(ph.p_filesz));
      readDumpFileAt(file, buf, ph.p_offset);
      noteParts.push(buf);
    } else if (ph.p_type === PT_LOAD) {
      if (ph.p_filesz > ph.p_memsz) throw new CorruptDumpError(`${file.path}: PT_LOAD ${i} has p_filesz > p_memsz`, { file: file.path, struct: 'Elf64_Phdr', field: 'p_filesz' });
      loads.push({ paddr: ph.p_paddr, vaddr: ph.p_vaddr, offset: ph.p_offset, filesz: ph.p_filesz, memsz: ph.p_memsz });
    }
  });
  const notes = noteParts.map((p, i) => readVmcoreNotes(p, `${file.path}: PT_NOTE ${i}`));
  const merged: VmcoreNotes = {
    notes: notes.flatMap((n) => n.notes),
    vmcoreinfo: notes.find((n) => n.vmcoreinfo !== null)?.vmcoreinfo ?? null,
    prstatus: notes.flatMap((n) => n.prstatus),
    vmcoredd: notes.flatMap((n) => n.vmcoredd),
  };
  return new ElfVmcoreDump(file, loads, merged);
}

export const elfVmcoreFormat: DumpFormatOps = {
  name: 'elf',
  probe: probeElfVmcore,
};
