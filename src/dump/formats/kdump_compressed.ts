/**
 * Reader of makedumpfile's kdump-compressed files (what `makedumpfile -c`,
 * `-l`, `-p`, `-z` and plain `-d` write), as crash (diskdump.c) and
 * libkdumpfile (diskdump.c) read them: the common header, the sub header
 * by header_version, the ELF notes (VMCOREINFO, NT_PRSTATUS) and the
 * eraseinfo, the two bitmaps, one page_desc per dumped page, pages stored
 * raw or compressed with zlib, LZO1X, snappy or zstd (decoded in
 * TypeScript, src/dump/codecs). Nothing is sized from a header value
 * before it is checked against the file.
 */
import {
  CorruptDumpError, DumpError, FaultError, TruncatedError, hex, viewOf,
} from '../../codec/index.js';
import { pt_regs } from '../../kernel/structs/pt_regs.js';
import { openPageInflater, type PageInflater } from '../codecs/gzip.js';
import { lzo1xDecompress } from '../codecs/lzo1x.js';
import { snappyDecompress } from '../codecs/snappy.js';
import { zstdDecompress } from '../codecs/zstd.js';
import {
  DISKDUMP_HEADER_BLOCKS, DISK_DUMP_SIGNATURE, KDUMP_DH_COMPRESSED_MASK, DUMP_DH_COMPRESSED_INCOMPLETE, DUMP_DH_COMPRESSED_LZO,
  DUMP_DH_COMPRESSED_SNAPPY, DUMP_DH_COMPRESSED_ZLIB, DUMP_DH_COMPRESSED_ZSTD, KDUMP_HEADER_VERSION_MAX, KDUMP_SIGNATURE,
  MAKEDUMPFILE_SIGNATURE, SIG_LEN, disk_dump_header, kdump_sub_header, page_desc,
  type DiskDumpHeader, type KdumpSubHeader, type PageDesc,
} from '../kdump/diskdump.js';
import {
  closeDumpFile, readDumpFileAt, verifyOnProbe, type DeviceDumpEntry, type DumpAttributes, type DumpCompressionName, type DumpFile, type DumpFormatOps, type DumpIntegrity,
  type DumpProblem, type ProbeOptions, type ProbedDump,
} from './types.js';
import { readVmcoreNotes, type VmcoreNotes } from './vmcore_notes.js';

/** The page size of x86_64, the only block_size read. */
const PAGE_SIZE = 4096;
/** Notes, VMCOREINFO and eraseinfo larger than this are refused rather than read (a cxgb4 device dump note alone is 32 MiB). */
const MAX_META_BYTES = 64 << 20;
/** PFNs per prefix-count entry of the dumped-page bitmap. */
const PREFIX_SPAN = 512;

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, i) => {
  let n = 0;
  for (let b = i; b; b >>= 1) n += b & 1;
  return n;
});

function compressionOf(flags: number): DumpCompressionName {
  if (flags & DUMP_DH_COMPRESSED_ZLIB) return 'zlib';
  if (flags & DUMP_DH_COMPRESSED_LZO) return 'lzo';
  if (flags & DUMP_DH_COMPRESSED_SNAPPY) return 'snappy';
  if (flags & DUMP_DH_COMPRESSED_ZSTD) return 'zstd';
  return 'none';
}

function latin1(b: Uint8Array): string {
  return Buffer.from(b).toString('latin1');
}

/** An opened kdump-compressed file. */
export class KdumpCompressedDump implements ProbedDump {
  readonly attrs: DumpAttributes;
  /** First PFN and one past the last this file holds pages for (a split dump holds a slice). */
  readonly startPfn: bigint;
  readonly endPfn: bigint;
  private readonly bitmap: Uint8Array;
  private readonly prefix: Uint32Array;
  private readonly descOffset: bigint;
  private readonly nrDesc: number;
  private readonly scratch = new Uint8Array(page_desc.size);
  /** Stored bytes of the page being read (at most a block). */
  private readonly stored: Uint8Array;
  /** One zlib stream reused for every page (the lkcd-pagezip addon, or node:zlib). */
  private inflater: PageInflater | null = null;
  /** Pages that failed their checks when every page was decoded (verifyPages): they read as not present. */
  private readonly damaged = new Map<bigint, DumpError>();
  private readonly problems: DumpProblem[] = [];
  /** First byte after the page descriptors: page data lies at or after it. */
  private readonly dataStart: bigint;

  constructor(
    private readonly file: DumpFile,
    readonly header: DiskDumpHeader,
    readonly sub: KdumpSubHeader,
    readonly maxMapnr: bigint,
    dumped: Uint8Array,
    readonly notes: VmcoreNotes,
    /** The VMCOREINFO text (from the notes, or from offset_vmcoreinfo of a version 3 header). */
    readonly vmcoreinfo: string | null,
    /** Text makedumpfile --eppic/--config filtering recorded (ERASEINFO), or ''. */
    readonly eraseinfo: string,
    startPfn: bigint,
    endPfn: bigint,
  ) {
    const bs = header.block_size;
    this.stored = new Uint8Array(bs);
    this.startPfn = startPfn;
    this.endPfn = endPfn;
    // Keep only the bits of [startPfn, endPfn): the descriptors of this file are for those.
    this.bitmap = dumped;
    for (let pfn = 0; pfn < this.bitmap.length * 8; pfn++) {
      if (BigInt(pfn) >= startPfn && BigInt(pfn) < endPfn) { pfn = Number(endPfn) - 1; continue; }
      this.bitmap[pfn >> 3] &= ~(1 << (pfn & 7));
    }
    const blocks = Math.ceil((this.bitmap.length * 8) / PREFIX_SPAN);
    this.prefix = new Uint32Array(blocks + 1);
    for (let i = 0; i < blocks; i++) {
      let n = 0;
      for (let j = i * (PREFIX_SPAN / 8); j < Math.min((i + 1) * (PREFIX_SPAN / 8), this.bitmap.length); j++) n += POPCOUNT[this.bitmap[j]];
      this.prefix[i + 1] = this.prefix[i] + n;
    }
    this.nrDesc = this.prefix[blocks];
    this.descOffset = BigInt((DISKDUMP_HEADER_BLOCKS + header.sub_hdr_size) * bs) + BigInt(header.bitmap_blocks) * BigInt(bs);
    this.dataStart = this.descOffset + BigInt(this.nrDesc * page_desc.size);
    if (this.dataStart > file.size) {
      throw new TruncatedError(`${file.path}: ${this.nrDesc} page descriptors at ${hex(this.descOffset)} run past the end of the file (${file.size} bytes)`,
        { file: file.path, offset: this.descOffset, struct: 'page_desc' });
    }
    const prs = notes.prstatus;
    const cpu = prs[header.current_cpu] ?? prs[0];
    const u = header.utsname;
    this.attrs = {
      'file.format': 'diskdump',
      'file.description': `makedumpfile kdump-compressed dump, header version ${header.header_version}`,
      'arch.name': 'x86_64',
      'arch.page_size': bs,
      'dump.compression': compressionOf(header.status),
      'dump.level': sub.dump_level,
      'dump.flags': header.status,
      'dump.pages': this.nrDesc,
      'crash.panic_string': '',
      'crash.time': header.tv_sec,
      'crash.time_usec': BigInt(header.tv_usec),
      'dump.memory_pages': maxMapnr,
      'linux.uts.release': u.release,
      'linux.uts.nodename': u.nodename,
      'linux.uts.version': u.version,
      'linux.uts.machine': u.machine,
      'crash.current_task': 0n,
      'crash.regs': cpu ? cpu.regs : pt_regs.zero(),
      'dump.data_offset': this.descOffset,
      'dump.truncated': (header.status & DUMP_DH_COMPRESSED_INCOMPLETE) !== 0,
    };
  }

  /** phys_base of the dumped kernel (kdump_sub_header.phys_base). */
  get physBase(): bigint {
    return this.sub.phys_base;
  }

  private isDumped(pfn: bigint): boolean {
    if (pfn < 0n || pfn >= BigInt(this.bitmap.length * 8)) return false;
    const p = Number(pfn);
    return (this.bitmap[p >> 3] & (1 << (p & 7))) !== 0;
  }

  has(pfn: bigint): boolean {
    return this.isDumped(pfn) && !this.damaged.has(pfn);
  }

  /** Index of the page_desc of a dumped PFN: the set bits before it. */
  private descIndex(pfn: number): number {
    const block = Math.floor(pfn / PREFIX_SPAN);
    let n = this.prefix[block];
    for (let j = block * (PREFIX_SPAN / 8); j < pfn >> 3; j++) n += POPCOUNT[this.bitmap[j]];
    n += POPCOUNT[this.bitmap[pfn >> 3] & ((1 << (pfn & 7)) - 1)];
    return n;
  }

  /** The descriptor of a dumped page (for tests and tools that want the stored form). */
  pageDesc(pfn: bigint): PageDesc {
    if (!this.isDumped(pfn)) throw new FaultError(`${this.file.path}: page ${hex(pfn * BigInt(PAGE_SIZE))} is not in the dump`, { address: pfn * BigInt(PAGE_SIZE), space: 'phys', file: this.file.path });
    const at = this.descOffset + BigInt(this.descIndex(Number(pfn)) * page_desc.size);
    if (readDumpFileAt(this.file, this.scratch, at) !== page_desc.size) {
      throw new TruncatedError(`${this.file.path}: page descriptor of pfn ${hex(pfn)} at ${hex(at)} is cut short`, { file: this.file.path, offset: at, struct: 'page_desc' });
    }
    return page_desc.decode(viewOf(this.scratch));
  }

  readPage(pfn: bigint): Uint8Array {
    const bad = this.damaged.get(pfn);
    if (bad) {
      throw new FaultError(`${this.file.path}: page ${hex(pfn * BigInt(PAGE_SIZE))} is damaged in the dump: ${bad.message}`,
        { address: pfn * BigInt(PAGE_SIZE), space: 'phys', file: this.file.path });
    }
    return this.decodePage(pfn);
  }

  /** Whether the page is stored compressed (its page_desc carries a compression flag). */
  compressed(pfn: bigint): boolean {
    return (this.pageDesc(pfn).flags & KDUMP_DH_COMPRESSED_MASK) !== 0;
  }

  /** The VMCOREINFO text of the file's notes (or of a version 3 header's offset_vmcoreinfo). */
  vmcoreinfoText(): string | null {
    return this.vmcoreinfo;
  }

  /**
   * Decodes every dumped page (what verifyPages asks): a page whose
   * descriptor, data or stream is bad is damaged, named with its PFN and
   * the offset of its data, and reads as not present afterwards.
   */
  verifyAll(onProgress?: (done: bigint, total: bigint) => void): void {
    const total = BigInt(this.nrDesc);
    let done = 0n;
    for (const pfn of this.dumpedPfns()) {
      try {
        this.decodePage(pfn);
      } catch (e) {
        if (!(e instanceof DumpError) || e.code === 'INTERNAL' || e.code === 'IO') throw e;
        this.damaged.set(pfn, e);
        this.problems.push({ pfn, offset: BigInt(e.where.offset ?? 0), error: e });
      }
      if (++done % 4096n === 0n) onProgress?.(done, total);
    }
    onProgress?.(total, total);
  }

  private decodePage(pfn: bigint): Uint8Array {
    const bs = this.header.block_size;
    const pd = this.pageDesc(pfn);
    const where = { file: this.file.path, offset: pd.offset, struct: 'page_desc' };
    const bad = (why: string): never => { throw new CorruptDumpError(`${this.file.path}: page ${hex(pfn * BigInt(bs))}: ${why}`, where); };
    if ((pd.flags & ~KDUMP_DH_COMPRESSED_MASK) !== 0) bad(`unknown page flags ${hex(pd.flags)}`);
    const compressed = pd.flags & KDUMP_DH_COMPRESSED_MASK;
    if ((compressed & (compressed - 1)) !== 0) bad(`more than one compression flag (${hex(pd.flags)})`);
    if (pd.size === 0 || pd.size > bs || (!compressed && pd.size !== bs)) bad(`stored size ${pd.size} (page size ${bs})`);
    if (pd.offset < this.dataStart && pd.offset + BigInt(pd.size) <= this.file.size) bad(`data at ${hex(pd.offset)} lies before the end of the page descriptors (${hex(this.dataStart)})`);
    if (pd.offset < 0n || pd.offset + BigInt(pd.size) > this.file.size) {
      throw new TruncatedError(`${this.file.path}: data of page ${hex(pfn * BigInt(bs))} at ${hex(pd.offset)} (+${pd.size}) runs past the end of the file`, where);
    }
    const out = new Uint8Array(bs);
    if (!compressed) {
      readDumpFileAt(this.file, out, pd.offset);
      return out;
    }
    const data = this.stored.subarray(0, pd.size);
    readDumpFileAt(this.file, data, pd.offset);
    let n: number;
    try {
      if (compressed === DUMP_DH_COMPRESSED_ZLIB) {
        this.inflater ??= openPageInflater();
        n = this.inflater.inflate(data, out);
      } else if (compressed === DUMP_DH_COMPRESSED_LZO) {
        n = lzo1xDecompress(data, out);
      } else if (compressed === DUMP_DH_COMPRESSED_SNAPPY) {
        n = snappyDecompress(data, out);
      } else {
        n = zstdDecompress(data, out);
      }
    } catch (e) {
      if (e instanceof DumpError && e.code === 'UNSUPPORTED') throw e;
      return bad(`${compressionOf(compressed)} data does not decompress: ${(e as Error).message}`);
    }
    if (n !== bs) bad(`decompresses to ${n} bytes, not ${bs}`);
    return out;
  }

  *pages(): Iterable<bigint> {
    for (const pfn of this.dumpedPfns()) if (!this.damaged.has(pfn)) yield pfn;
  }

  private *dumpedPfns(): Generator<bigint> {
    for (let i = 0; i < this.bitmap.length; i++) {
      const b = this.bitmap[i];
      if (b === 0) continue;
      for (let k = 0; k < 8; k++) if (b & (1 << k)) yield BigInt(i * 8 + k);
    }
  }

  /**
   * makedumpfile's format has no per-page checksums: a page is checked only as it is decoded (its
   * descriptor, its size, its compressed stream), every page when opened with verifyPages. A file
   * makedumpfile did not finish says so in the header (DUMP_DH_COMPRESSED_INCOMPLETE).
   */
  integrity(): DumpIntegrity {
    return {
      state: this.problems.length ? 'damaged' : this.attrs['dump.truncated'] ? 'truncated' : 'complete',
      checksum: 'unverified',
      ranges: [],
      problems: [...this.problems],
      notes: [
        'kdump-compressed dumps carry no checksums: each page is checked as it is decoded',
        ...(this.attrs['dump.truncated'] ? ['makedumpfile did not finish the file (DUMP_DH_COMPRESSED_INCOMPLETE in status)'] : []),
      ],
    };
  }

  /** The device dumps of the LINUX/NT_VMCOREDD notes. */
  deviceDumps(): DeviceDumpEntry[] {
    return this.notes.vmcoredd;
  }

  close(): void {
    this.inflater?.close();
    this.inflater = null;
    closeDumpFile(this.file);
  }
}

function readAt(file: DumpFile, offset: bigint, length: number, what: string): Uint8Array {
  const buf = new Uint8Array(length);
  if (offset < 0n || readDumpFileAt(file, buf, offset) !== length) {
    throw new TruncatedError(`${file.path}: ${what} (${length} bytes at ${hex(offset)}) runs past the end of the file (${file.size} bytes)`,
      { file: file.path, offset });
  }
  return buf;
}

function metaRange(file: DumpFile, offset: bigint, size: bigint, what: string): Uint8Array {
  if (size === 0n) return new Uint8Array(0);
  if (size > BigInt(MAX_META_BYTES)) throw new CorruptDumpError(`${file.path}: ${what} of ${size} bytes is larger than ${MAX_META_BYTES}`, { file: file.path, struct: 'kdump_sub_header' });
  return readAt(file, offset, Number(size), what);
}

/**
 * Opens a kdump-compressed file, or returns null when it is not one. With
 * opts.verifyPages every page is decoded now: a bad page throws in strict
 * mode and is damaged (listed by integrity(), read as not present) in salvage.
 */
export function probeKdumpCompressed(file: DumpFile, opts: ProbeOptions = {}): KdumpCompressedDump | null {
  return verifyOnProbe(openKdumpCompressed(file), opts);
}

function openKdumpCompressed(file: DumpFile): KdumpCompressedDump | null {
  const head = new Uint8Array(disk_dump_header.size);
  const got = readDumpFileAt(file, head, 0n);
  if (got >= MAKEDUMPFILE_SIGNATURE.length && latin1(head.subarray(0, MAKEDUMPFILE_SIGNATURE.length)) === MAKEDUMPFILE_SIGNATURE) {
    throw new DumpError('UNSUPPORTED', `${file.path}: a flattened makedumpfile stream (makedumpfile -F): rearrange it first with 'makedumpfile -R ${file.path}.kdump < ${file.path}'`, { file: file.path });
  }
  if (got < SIG_LEN) return null;
  const sig = latin1(head.subarray(0, SIG_LEN));
  if (sig === DISK_DUMP_SIGNATURE) {
    throw new DumpError('UNSUPPORTED', `${file.path}: an old diskdump file ("DISKDUMP"); only makedumpfile's "KDUMP" format is read`, { file: file.path });
  }
  if (sig !== KDUMP_SIGNATURE) return null;
  if (got < disk_dump_header.size) {
    throw new TruncatedError(`${file.path}: kdump-compressed header cut short (${got} of ${disk_dump_header.size} bytes)`, { file: file.path, struct: 'disk_dump_header' });
  }
  const h = disk_dump_header.decode(viewOf(head));
  const bad = (why: string, field: string): never => {
    throw new CorruptDumpError(`${file.path}: ${why}`, { file: file.path, struct: 'disk_dump_header', field });
  };
  if (h.header_version < 1 || h.header_version > KDUMP_HEADER_VERSION_MAX) {
    throw new DumpError('UNSUPPORTED', `${file.path}: kdump-compressed header_version ${h.header_version} (1 to ${KDUMP_HEADER_VERSION_MAX} are read)`, { file: file.path, struct: 'disk_dump_header', field: 'header_version' });
  }
  if (h.block_size !== PAGE_SIZE) {
    throw new DumpError('UNSUPPORTED', `${file.path}: block_size ${h.block_size}: only ${PAGE_SIZE}-byte pages (x86_64) are read`, { file: file.path, struct: 'disk_dump_header', field: 'block_size' });
  }
  if (h.sub_hdr_size < 1) bad(`sub_hdr_size ${h.sub_hdr_size}`, 'sub_hdr_size');
  const bs = BigInt(h.block_size);
  const bitmapStart = BigInt(DISKDUMP_HEADER_BLOCKS + h.sub_hdr_size) * bs;
  const bitmapBytes = BigInt(h.bitmap_blocks) * bs;
  if (h.bitmap_blocks === 0 || h.bitmap_blocks % 2 !== 0) bad(`bitmap_blocks ${h.bitmap_blocks} (two bitmaps of whole blocks expected)`, 'bitmap_blocks');
  if (bitmapStart + bitmapBytes > file.size) {
    throw new TruncatedError(`${file.path}: bitmaps (${bitmapBytes} bytes at ${hex(bitmapStart)}) run past the end of the file (${file.size} bytes)`, { file: file.path, struct: 'disk_dump_header', field: 'bitmap_blocks' });
  }
  const sub = kdump_sub_header.decode(viewOf(readAt(file, bs, kdump_sub_header.size, 'kdump_sub_header')));
  const maxMapnr = h.header_version >= 6 ? sub.max_mapnr_64 : BigInt(h.max_mapnr);
  const halfBits = (bitmapBytes / 2n) * 8n;
  if (maxMapnr > halfBits) bad(`the bitmaps cover ${halfBits} pages, max_mapnr is ${maxMapnr}`, 'max_mapnr');
  let startPfn = 0n;
  let endPfn = maxMapnr;
  if (h.header_version >= 2 && sub.split) {
    startPfn = h.header_version >= 6 ? sub.start_pfn_64 : sub.start_pfn;
    endPfn = h.header_version >= 6 ? sub.end_pfn_64 : sub.end_pfn;
    if (startPfn > endPfn || endPfn > maxMapnr) bad(`split range [${startPfn}, ${endPfn}) outside max_mapnr ${maxMapnr}`, 'start_pfn');
  }
  const subEnd = bitmapStart;
  let notes: VmcoreNotes = { notes: [], vmcoreinfo: null, prstatus: [], vmcoredd: [] };
  let vmcoreinfo: string | null = null;
  if (h.header_version >= 4 && sub.size_note > 0n) {
    if (sub.offset_note < bs || sub.offset_note + BigInt(sub.size_note) > subEnd) bad(`notes at ${hex(sub.offset_note)} (+${sub.size_note}) lie outside the sub header blocks`, 'offset_note');
    notes = readVmcoreNotes(metaRange(file, sub.offset_note, sub.size_note, 'ELF notes'), `${file.path}: ELF notes`);
    vmcoreinfo = notes.vmcoreinfo;
  } else if (h.header_version >= 3 && sub.size_vmcoreinfo > 0n) {
    if (sub.offset_vmcoreinfo < bs || sub.offset_vmcoreinfo + BigInt(sub.size_vmcoreinfo) > subEnd) bad(`VMCOREINFO at ${hex(sub.offset_vmcoreinfo)} lies outside the sub header blocks`, 'offset_vmcoreinfo');
    vmcoreinfo = latin1(metaRange(file, sub.offset_vmcoreinfo, sub.size_vmcoreinfo, 'VMCOREINFO'));
  }
  let eraseinfo = '';
  if (h.header_version >= 5 && sub.size_eraseinfo > 0n) {
    eraseinfo = latin1(metaRange(file, sub.offset_eraseinfo, sub.size_eraseinfo, 'eraseinfo'));
  }
  // The 2nd bitmap (pages dumped), sized by max_mapnr rather than by the header's block count.
  const dumpedBytes = Number((maxMapnr + 7n) / 8n);
  const dumped = readAt(file, bitmapStart + bitmapBytes / 2n, dumpedBytes, '2nd bitmap');
  return new KdumpCompressedDump(file, h, sub, maxMapnr, dumped, notes, vmcoreinfo, eraseinfo, startPfn, endPfn);
}

/** The format table entry (libkdumpfile calls this format "diskdump"). */
export const kdumpCompressedFormat: DumpFormatOps = {
  name: 'diskdump',
  probe: probeKdumpCompressed,
};
