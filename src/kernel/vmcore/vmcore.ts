/**
 * /proc/vmcore as fs/proc/vmcore.c (v5.4) builds it from an ELF core
 * header in old memory: every PT_NOTE's notes are measured (up to the
 * empty final note), concatenated into one buffer and described by one
 * PT_NOTE placed first; each PT_LOAD becomes a page-aligned chunk of old
 * memory read from its p_offset (the physical address where the data
 * really is: kexec-tools points the low 640 KiB at its backup copy, and
 * fadump points boot memory at the firmware's copy) with p_offset
 * re-based to the file. Device dumps (vmcoredd) go between the headers
 * and the notes, as vmcoredd_update_size() places them.
 *
 * File layout:
 *   [0, elfcorebuf_sz)                          Ehdr, PT_NOTE, PT_LOADs, zero pad to a page
 *   [elfcorebuf_sz, + vmcoredd_orig_sz)         device dumps, each a whole number of pages
 *   [.., + roundup(elfnotes_orig_sz, PAGE))     the merged notes, zero pad
 *   then each PT_LOAD's chunk, rounddown(p_offset) to roundup(p_offset + p_memsz)
 */
import {
  CorruptDumpError, EI_CLASS, EI_VERSION, ELFCLASS64, ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, EM_X86_64, ET_CORE,
  EV_CURRENT, Elf64_Ehdr, Elf64_Nhdr, Elf64_Phdr, ELF_NOTE_ALIGN, PN_XNUM, PT_LOAD, PT_NOTE, hex, viewOf,
  type Elf64Ehdr, type Elf64Phdr,
} from '../../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../../machine/index.js';

/** Reads old memory (copy_oldmem_page): fills `out` from physical `paddr`. */
export type OldMemReader = (paddr: bigint, out: Uint8Array) => void;

/** Most bytes one PT_NOTE may claim; the kernel kmallocs p_memsz, we refuse absurd values instead. */
export const VMCORE_MAX_NOTE_BYTES = 1 << 20;
/** Most program headers an ELF core header may have (e_phnum is 16 bits; PN_XNUM is reserved). */
export const VMCORE_MAX_PHNUM = PN_XNUM - 1;

/** One chunk of old memory in the file: struct vmcore (paddr, size, offset). */
export interface VmcoreChunk {
  paddr: bigint;
  size: bigint;
  offset: bigint;
}

/** A device dump (vmcore_add_device_dump): a note of whole pages, already written. */
export interface VmcoreDeviceDump {
  /** Bytes, a multiple of PAGE_SIZE. */
  size: number;
  read(offset: number, out: Uint8Array): void;
}

/** Everything /proc/vmcore serves, built once at boot as vmcore_init() does. */
export interface VmcoreLayout {
  /** Ehdr + merged PT_NOTE + PT_LOADs, zero padded to a page (elfcorebuf). */
  elfcorebuf: Uint8Array;
  /** The merged notes, zero padded to a page (elfnotes_buf). */
  elfnotes: Uint8Array;
  /** Bytes of notes before padding (elfnotes_orig_sz). */
  elfnotesOrigSize: number;
  /** Total bytes of device dumps between the headers and the notes (vmcoredd_orig_sz). */
  vmcoreddSize: number;
  chunks: VmcoreChunk[];
  /** vmcore_size: the file's length. */
  size: bigint;
}

function roundup(n: bigint, to: bigint): bigint {
  return ((n + to - 1n) / to) * to;
}
function rounddown(n: bigint, to: bigint): bigint {
  return (n / to) * to;
}

function bad(why: string, field?: string): never {
  throw new CorruptDumpError(`ELF core header: ${why}`, { struct: field ? 'Elf64_Phdr' : 'Elf64_Ehdr', field });
}

/** The Ehdr checks of parse_crash_elf64_headers(). */
function checkEhdr(eh: Elf64Ehdr): void {
  const id = eh.e_ident;
  if (id[0] !== ELFMAG0 || id[1] !== ELFMAG1 || id[2] !== ELFMAG2 || id[3] !== ELFMAG3) bad('not found (no ELF magic)', 'e_ident');
  if (eh.e_type !== ET_CORE || eh.e_machine !== EM_X86_64 || id[EI_CLASS] !== ELFCLASS64 || id[EI_VERSION] !== EV_CURRENT
    || eh.e_version !== EV_CURRENT || eh.e_ehsize !== Elf64_Ehdr.size || eh.e_phentsize !== Elf64_Phdr.size || eh.e_phnum === 0) {
    bad(`not sane (e_type ${eh.e_type}, e_machine ${eh.e_machine}, class ${id[EI_CLASS]}, e_phnum ${eh.e_phnum})`);
  }
  if (eh.e_phnum > VMCORE_MAX_PHNUM) bad(`e_phnum ${eh.e_phnum} exceeds ${VMCORE_MAX_PHNUM}`, 'e_phnum');
}

/** Real size of the notes at a PT_NOTE: up to the empty header (update_note_header_size_elf64). */
function realNoteSize(buf: Uint8Array): number {
  const view = viewOf(buf);
  let real = 0;
  while (real + Elf64_Nhdr.size <= buf.length) {
    const h = Elf64_Nhdr.decode(view, real);
    if (h.n_namesz === 0) break;
    const sz = Elf64_Nhdr.size + (((h.n_namesz + ELF_NOTE_ALIGN - 1) & ~(ELF_NOTE_ALIGN - 1)) >>> 0)
      + (((h.n_descsz + ELF_NOTE_ALIGN - 1) & ~(ELF_NOTE_ALIGN - 1)) >>> 0);
    // "Warning: Exceeded p_memsz, dropping PT_NOTE entry": the note that does not fit is left out.
    if (real + sz > buf.length) break;
    real += sz;
  }
  return real;
}

/**
 * parse_crash_elf64_headers() + merge_note_headers_elf64() +
 * process_ptload_program_headers_elf64(): the layout of /proc/vmcore for
 * the ELF core header at `addr` in old memory, whose size is at most
 * `limit` bytes (elfcorehdr_size, or what RAM holds). Every PT_LOAD must
 * lie inside `ramBytes`. Throws CorruptDumpError naming the problem.
 */
export function buildVmcoreLayout(readOld: OldMemReader, addr: bigint, limit: bigint, ramBytes: bigint): VmcoreLayout {
  if (limit < BigInt(Elf64_Ehdr.size)) bad(`elfcorehdr of ${limit} bytes is smaller than an ELF header`);
  const ehBytes = new Uint8Array(Elf64_Ehdr.size);
  readOld(addr, ehBytes);
  const eh = Elf64_Ehdr.decode(viewOf(ehBytes));
  checkEhdr(eh);
  const origSize = Elf64_Ehdr.size + eh.e_phnum * Elf64_Phdr.size;
  if (BigInt(origSize) > limit) bad(`${eh.e_phnum} program headers run past the ${limit}-byte elfcorehdr`, 'e_phnum');
  const orig = new Uint8Array(origSize);
  readOld(addr, orig);
  const phdrs: Elf64Phdr[] = [];
  for (let i = 0; i < eh.e_phnum; i++) phdrs.push(Elf64_Phdr.decode(viewOf(orig), Elf64_Ehdr.size + i * Elf64_Phdr.size));

  // Measure and copy every PT_NOTE's notes.
  const noteParts: Uint8Array[] = [];
  let nrPtnote = 0;
  for (const [i, ph] of phdrs.entries()) {
    if (ph.p_type !== PT_NOTE) continue;
    nrPtnote++;
    if (ph.p_memsz > BigInt(VMCORE_MAX_NOTE_BYTES)) bad(`PT_NOTE ${i} p_memsz ${ph.p_memsz} exceeds ${VMCORE_MAX_NOTE_BYTES}`, 'p_memsz');
    if (ph.p_offset + ph.p_memsz > ramBytes) bad(`PT_NOTE ${i} at ${hex(ph.p_offset)} (+${hex(ph.p_memsz)}) is outside RAM`, 'p_offset');
    const buf = new Uint8Array(Number(ph.p_memsz));
    readOld(ph.p_offset, buf);
    noteParts.push(buf.subarray(0, realNoteSize(buf)));
  }
  const notesOrig = noteParts.reduce((s, p) => s + p.length, 0);
  const notesPadded = Number(roundup(BigInt(notesOrig), PAGE_SIZE_N));
  const elfnotes = new Uint8Array(notesPadded);
  let at = 0;
  for (const p of noteParts) { elfnotes.set(p, at); at += p.length; }

  // One PT_NOTE first, then the PT_LOADs (and anything else) in their order.
  const loads = phdrs.filter((p) => p.p_type !== PT_NOTE);
  const phnum = loads.length + 1;
  const noteOff = BigInt(Elf64_Ehdr.size + phnum * Elf64_Phdr.size);
  const elfcorebufSize = Number(roundup(noteOff, PAGE_SIZE_N));
  const elfcorebuf = new Uint8Array(elfcorebufSize);
  const view = viewOf(elfcorebuf);
  Elf64_Ehdr.encode({ ...eh, e_phnum: phnum }, view, 0);
  Elf64_Phdr.encode({
    p_type: PT_NOTE, p_flags: 0, p_offset: roundup(noteOff, PAGE_SIZE_N), p_vaddr: 0n, p_paddr: 0n,
    p_filesz: BigInt(notesOrig), p_memsz: BigInt(notesOrig), p_align: 0n,
  }, view, Elf64_Ehdr.size);
  if (nrPtnote === 0) bad('no PT_NOTE program header');

  const chunks: VmcoreChunk[] = [];
  let vmcoreOff = BigInt(elfcorebufSize + notesPadded);
  loads.forEach((ph, i) => {
    const out = { ...ph };
    if (ph.p_type === PT_LOAD) {
      if (ph.p_offset + ph.p_memsz > ramBytes || ph.p_offset + ph.p_memsz < ph.p_offset) {
        bad(`PT_LOAD at ${hex(ph.p_offset)} (+${hex(ph.p_memsz)}) is outside RAM of ${hex(ramBytes)} bytes`, 'p_offset');
      }
      const start = rounddown(ph.p_offset, PAGE_SIZE_N);
      const end = roundup(ph.p_offset + ph.p_memsz, PAGE_SIZE_N);
      chunks.push({ paddr: start, size: end - start, offset: vmcoreOff });
      out.p_offset = vmcoreOff + (ph.p_offset - start);
      vmcoreOff += end - start;
    }
    Elf64_Phdr.encode(out, view, Elf64_Ehdr.size + (i + 1) * Elf64_Phdr.size);
  });
  return { elfcorebuf, elfnotes, elfnotesOrigSize: notesOrig, vmcoreddSize: 0, chunks, size: vmcoreOff };
}

/**
 * vmcoredd_update_size(): the layout with `dumpBytes` more bytes of
 * device dumps before the notes; the PT_NOTE grows by them and every
 * chunk moves down (vmcoredd_update_program_headers).
 */
export function withDeviceDumps(layout: VmcoreLayout, dumpBytes: number): VmcoreLayout {
  if (dumpBytes % PAGE_SIZE !== 0) throw new CorruptDumpError(`device dumps of ${dumpBytes} bytes are not whole pages`, { struct: 'vmcoredd_header' });
  const vmcoreddSize = layout.vmcoreddSize + dumpBytes;
  const elfnotesSz = BigInt(layout.elfnotes.length + vmcoreddSize);
  const elfcorebuf = new Uint8Array(layout.elfcorebuf);
  const view = viewOf(elfcorebuf);
  const eh = Elf64_Ehdr.decode(view, 0);
  let vmcoreOff = BigInt(elfcorebuf.length) + elfnotesSz;
  for (let i = 0; i < eh.e_phnum; i++) {
    const at = Elf64_Ehdr.size + i * Elf64_Phdr.size;
    const ph = Elf64_Phdr.decode(view, at);
    if (ph.p_type === PT_NOTE) {
      ph.p_memsz = BigInt(layout.elfnotesOrigSize + vmcoreddSize);
      ph.p_filesz = ph.p_memsz;
    } else if (ph.p_type === PT_LOAD) {
      // p_offset holds the file offset now; its page offset is what moves with it.
      const oldStart = rounddown(ph.p_offset, PAGE_SIZE_N);
      const size = roundup(ph.p_offset + ph.p_memsz, PAGE_SIZE_N) - oldStart;
      ph.p_offset = vmcoreOff + (ph.p_offset - oldStart);
      vmcoreOff += size;
    }
    Elf64_Phdr.encode(ph, view, at);
  }
  let off = BigInt(elfcorebuf.length) + elfnotesSz;
  const chunks = layout.chunks.map((c) => {
    const moved = { ...c, offset: off };
    off += c.size;
    return moved;
  });
  return { ...layout, elfcorebuf, vmcoreddSize, chunks, size: off };
}

/**
 * __read_vmcore(): fills `out` with the file's bytes at `pos`: headers,
 * device dumps, notes, then old memory. Past the end is an error.
 */
export function readVmcore(layout: VmcoreLayout, readOld: OldMemReader, pos: bigint, out: Uint8Array,
  deviceDumps: readonly VmcoreDeviceDump[] = []): void {
  if (pos < 0n || pos + BigInt(out.length) > layout.size) {
    throw new CorruptDumpError(`read of ${out.length} bytes at ${hex(pos)} is past the end of /proc/vmcore (${hex(layout.size)} bytes)`, { offset: pos });
  }
  let done = 0;
  const hdrEnd = BigInt(layout.elfcorebuf.length);
  const ddEnd = hdrEnd + BigInt(layout.vmcoreddSize);
  const notesEnd = ddEnd + BigInt(layout.elfnotes.length);
  while (done < out.length) {
    const p = pos + BigInt(done);
    const want = out.length - done;
    if (p < hdrEnd) {
      const n = Math.min(want, Number(hdrEnd - p));
      out.set(layout.elfcorebuf.subarray(Number(p), Number(p) + n), done);
      done += n;
    } else if (p < ddEnd) {
      let base = hdrEnd;
      let n = 0;
      for (const d of deviceDumps) {
        const end = base + BigInt(d.size);
        if (p < end) {
          n = Math.min(want, Number(end - p));
          d.read(Number(p - base), out.subarray(done, done + n));
          break;
        }
        base = end;
      }
      if (n === 0) throw new CorruptDumpError(`device dumps hold fewer than the ${layout.vmcoreddSize} bytes the layout counts`, {});
      done += n;
    } else if (p < notesEnd) {
      const n = Math.min(want, Number(notesEnd - p));
      const from = Number(p - ddEnd);
      out.set(layout.elfnotes.subarray(from, from + n), done);
      done += n;
    } else {
      const c = layout.chunks.find((x) => p >= x.offset && p < x.offset + x.size);
      if (!c) throw new CorruptDumpError(`no chunk of /proc/vmcore holds offset ${hex(p)}`, { offset: p });
      const n = Math.min(want, Number(c.offset + c.size - p));
      readOld(c.paddr + (p - c.offset), out.subarray(done, done + n));
      done += n;
    }
  }
}
