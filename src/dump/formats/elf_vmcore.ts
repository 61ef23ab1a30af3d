/**
 * Reader of ELF vmcores: /proc/vmcore as copied, `makedumpfile -E`,
 * `machine export-vmcore`, `lkcd export --elf` (ELF64 ET_CORE EM_X86_64).
 * Pages come from the PT_LOADs by p_paddr; bytes of a page no PT_LOAD
 * covers read as zero when another part of the page is covered (the
 * partial page at the end of a RAM range), and a page no PT_LOAD touches
 * is not in the dump. Nor is a page that lies wholly past a PT_LOAD's
 * p_filesz: that is how makedumpfile -E leaves out the pages its dump
 * level excludes, and libkdumpfile too has no data for them (the ELF
 * zero-fill would give zeros that were never in RAM). Notes: VMCOREINFO and NT_PRSTATUS. A file cut short
 * (a PT_LOAD whose data runs past its end) opens TRUNCATED: each such load
 * keeps the whole pages the file still holds, the rest is not in the dump.
 */
import {
  CorruptDumpError, DumpError, EI_CLASS, EI_DATA, ELFCLASS64, ELFDATA2LSB, ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, EM_X86_64,
  ET_CORE, Elf64_Ehdr, Elf64_Phdr, FaultError, PT_LOAD, PT_NOTE, TruncatedError, hex, viewOf, type Elf64Phdr,
} from '../../codec/index.js';
import { pt_regs } from '../../kernel/structs/pt_regs.js';
import { new_utsname } from '../../kernel/structs/new_utsname.js';
import {
  closeDumpFile, readDumpFileAt, verifyOnProbe, type DeviceDumpEntry, type DumpAttributes, type DumpFile, type DumpFormatOps, type DumpIntegrity, type DumpProblem,
  type ProbeOptions, type ProbedDump,
} from './types.js';
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

  /** What a cut-short file lost, one line per load it clipped. */
  private readonly cut: string[];
  private readonly problems: DumpProblem[] = [];
  /** Loads whose bytes no earlier load also covers: a page found in one needs no scan of the others. */
  private readonly alone: ReadonlySet<Load>;
  /** The load the last page came from (pages are mostly read in order). */
  private lastLoad: Load | null = null;

  constructor(private readonly file: DumpFile, loads: Load[], readonly notes: VmcoreNotes, cut: string[] = []) {
    this.loads = loads;
    this.cut = cut;
    // Page ranges [first, end) any PT_LOAD's file bytes touch, merged.
    const spans = loads.filter((l) => l.filesz > 0n)
      .map((l) => [l.paddr / PAGE, (l.paddr + l.filesz + PAGE - 1n) / PAGE] as [bigint, bigint])
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.ranges = [];
    for (const [s, e] of spans) {
      const last = this.ranges[this.ranges.length - 1];
      if (last && s <= last[1]) { if (e > last[1]) last[1] = e; } else this.ranges.push([s, e]);
    }
    // In program header order the first load to cover a byte wins; a load that overlaps no other can be used
    // alone. Sorted by start, a load overlaps another exactly when it starts before the furthest end of those
    // before it, or ends after the start of the one after it.
    const byStart = loads.filter((l) => l.memsz > 0n).sort((a, b) => (a.paddr < b.paddr ? -1 : a.paddr > b.paddr ? 1 : 0));
    const alone = new Set<Load>();
    let reach = -1n;
    byStart.forEach((l, k) => {
      const next = byStart[k + 1];
      if (l.paddr >= reach && (!next || l.paddr + l.memsz <= next.paddr)) alone.add(l);
      if (l.paddr + l.memsz > reach) reach = l.paddr + l.memsz;
    });
    this.alone = alone;
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
      'dump.memory_pages': loads.reduce((m, l) => ((l.paddr + l.memsz + PAGE - 1n) / PAGE > m ? (l.paddr + l.memsz + PAGE - 1n) / PAGE : m), 0n),
      'linux.uts.release': uts?.release ?? info.get('OSRELEASE') ?? '',
      'linux.uts.nodename': uts?.nodename ?? '',
      'linux.uts.version': uts?.version ?? '',
      'linux.uts.machine': uts?.machine ?? 'x86_64',
      'crash.current_task': 0n,
      'crash.regs': notes.prstatus[0]?.regs ?? pt_regs.zero(),
      'dump.data_offset': loads.length ? loads.reduce((m, l) => (l.offset < m ? l.offset : m), loads[0].offset) : 0n,
      'dump.truncated': cut.length > 0,
    };
  }

  /** The VMCOREINFO note's text, or null. */
  vmcoreinfoText(): string | null {
    return this.notes.vmcoreinfo;
  }

  /** Reads every page (verifyPages): one whose bytes cannot be read is a problem. */
  verifyAll(onProgress?: (done: bigint, total: bigint) => void): void {
    const total = BigInt(this.attrs['dump.pages']);
    let done = 0n;
    for (const pfn of this.pages()) {
      try {
        this.readPage(pfn);
      } catch (e) {
        if (!(e instanceof DumpError) || e.code === 'INTERNAL' || e.code === 'IO') throw e;
        this.problems.push({ pfn, offset: BigInt(e.where.offset ?? 0), error: e });
      }
      if (++done % 4096n === 0n) onProgress?.(done, total);
    }
    onProgress?.(total, total);
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
    // Binary search of the merged, sorted ranges.
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [s, e] = this.ranges[mid];
      if (pfn < s) hi = mid - 1;
      else if (pfn >= e) lo = mid + 1;
      else return true;
    }
    return false;
  }

  readPage(pfn: bigint): Uint8Array {
    if (!this.has(pfn)) throw new FaultError(`${this.file.path}: page ${hex(pfn * PAGE)} is not in the dump`, { address: pfn * PAGE, space: 'phys', file: this.file.path });
    const out = new Uint8Array(PAGE_SIZE);
    const start = pfn * PAGE;
    // The common case: one PT_LOAD holds the whole page in the file (the last one used, when nothing overlaps it).
    const holds = (l: Load): boolean => l.paddr <= start && start + PAGE <= l.paddr + l.filesz;
    const last = this.lastLoad;
    const whole = last && this.alone.has(last) && holds(last) ? last : this.loads.find(holds);
    if (whole) {
      this.lastLoad = whole;
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

  /** An ELF vmcore has no checksums and no completeness mark: what its PT_LOADs hold is the dump, unless the file was cut short. */
  integrity(): DumpIntegrity {
    return {
      state: this.problems.length ? 'damaged' : this.cut.length ? 'truncated' : 'complete',
      checksum: 'unverified', ranges: [], problems: [...this.problems],
      notes: ['ELF vmcores carry no checksums', ...this.cut],
    };
  }

  /** The device dumps of the LINUX/NT_VMCOREDD notes. */
  deviceDumps(): DeviceDumpEntry[] {
    return this.notes.vmcoredd;
  }

  close(): void {
    closeDumpFile(this.file);
  }
}

/** Opens an ELF64 x86_64 core file, or returns null when the file is not ELF; verifyPages reads every page. */
export function probeElfVmcore(file: DumpFile, opts: ProbeOptions = {}): ElfVmcoreDump | null {
  return verifyOnProbe(openElfVmcore(file), opts);
}

function openElfVmcore(file: DumpFile): ElfVmcoreDump | null {
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
  const cut: string[] = [];
  phdrs.forEach((ph, i) => {
    if (ph.p_offset + ph.p_filesz > file.size && ph.p_type === PT_LOAD && ph.p_filesz <= ph.p_memsz) {
      // Cut short: keep the whole pages the file still holds, and let the rest be absent (never zeros).
      const have = ph.p_offset >= file.size ? 0n : ((file.size - ph.p_offset) / PAGE) * PAGE;
      cut.push(`cut short: PT_LOAD ${i} (paddr ${hex(ph.p_paddr)}) needs ${hex(ph.p_offset + ph.p_filesz)} bytes of the file, which ends at ${hex(file.size)}; ` +
        `its last ${(ph.p_filesz - have + PAGE - 1n) / PAGE} pages are not in the dump`);
      loads.push({ paddr: ph.p_paddr, vaddr: ph.p_vaddr, offset: ph.p_offset, filesz: have, memsz: have });
      return;
    }
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
  return new ElfVmcoreDump(file, loads, merged, cut);
}

export const elfVmcoreFormat: DumpFormatOps = {
  name: 'elf',
  probe: probeElfVmcore,
};
