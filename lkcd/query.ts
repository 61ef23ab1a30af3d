import fs from 'node:fs';
import path from 'node:path';
import { DumpError, FaultError, hex, InternalError, UsageError } from '../src/codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N, type MachineRoot } from '../src/machine/index.js';
import { accountFrames, ElfVmcoreDump, KdumpCompressedDump, LkcdDump, openDump, type ProbedDump } from '../src/dump/index.js';
import { DumpIndex, type DumpRecord, type MissingRange } from '../src/store/index.js';
import { dumpDirOf } from './dumpdir.js';
import { loadSysconfig, type SysconfigDump } from './sysconfig.js';
import { SymbolTable } from './symbols.js';
import { vmlinuxShowText, vmlinuxStatus } from './debuginfo.js';
import { loadDumpMap, missingText } from './save.js';

/**
 * DUMPDIR from etc/sysconfig/dump alone, without writing a default config:
 * the query commands read saved dumps and need no machine (no state.json,
 * no running kernel; the release only matters for KEXEC_IMAGE's default).
 */
export function dumpDirFor(root: MachineRoot): string {
  return sysconfigFor(root).DUMPDIR;
}

/** etc/sysconfig/dump as the query commands see it: no machine needed, no default written. */
export function sysconfigFor(root: MachineRoot): SysconfigDump {
  return loadSysconfig(root.sysconfigPath, root.dir, null, { createDefault: false });
}

export function parseDumpNumber(text: string | number): number {
  const s = String(text);
  if (!/^\d{1,9}$/.test(s)) throw new UsageError(`'${s}' is not a dump number`);
  return Number(s);
}

export interface OpenedDump {
  rec: DumpRecord;
  dir: string;
  file: string;
  dump: ProbedDump;
  /** map.N, the System.map kept with the dump; null when there is none (an import without --map). */
  syms: SymbolTable | null;
  /** The ranges the index lists for the dump: missing ones, the dumper's, the damaged pages. */
  ranges: MissingRange[];
  close(): void;
}

/**
 * Opens dump N through the format table, at the file its row names (DUMPDIR/N/dump.N, or a kdump
 * vmcore where kdumpctl save left it). An LKCD dump's pages are found by the index, never by
 * walking the file (a page the index does not hold, missing or damaged, reads as not present),
 * with the RLE convention the index recorded; the other formats index themselves (bitmaps, program
 * headers), so random reads need no walk either.
 */
export function openIndexedDump(dumpdir: string, n: number): OpenedDump {
  const index = DumpIndex.open(dumpdir, { readonly: true });
  const rec = index.getDump(n);
  if (!rec) {
    index.close();
    throw new DumpError('NOINPUT', `no dump ${n} in ${dumpdir} (see lkcd list)`);
  }
  const dir = dumpDirOf(dumpdir, n);
  const file = path.resolve(dir, rec.file);
  if (!fs.existsSync(file)) {
    index.close();
    throw new DumpError('NOINPUT', `${file}: dump ${n} is indexed but its file is gone (run lkcd reindex)`, { file });
  }
  let dump: ProbedDump;
  let ranges: MissingRange[];
  let syms: SymbolTable | null;
  try {
    ranges = index.missing(n);
    dump = rec.format === 'lkcd'
      ? openDump(file, { index: (pfn) => index.pageLocation(n, pfn), rle: rec.rle_convention ?? undefined })
      : openDump(file);
  } catch (e) {
    index.close();
    throw e;
  }
  try {
    syms = loadDumpMap(dir, n);
  } catch (e) {
    dump.close();
    index.close();
    throw e;
  }
  return { rec, dir, file, dump, syms, ranges, close: () => { dump.close(); index.close(); } };
}

/** Why a frame is not in the dump, from the ranges the index lists; null when none lists it. */
export function whyAbsent(ranges: readonly MissingRange[], pfn: bigint): string | null {
  const r = ranges.find((x) => pfn >= x.start_pfn && pfn < x.end_pfn);
  if (!r) return null;
  switch (r.reason) {
    case 'damaged': return 'it is damaged in the dump (it fails its checks)';
    case 'dumper': return 'it held the dumper\'s own data at the crash';
    case 'did-not-fit': return 'it is missing: it did not fit in memory at the crash';
    case 'pass-dropped': return 'it is missing: its pass was dropped at the crash';
    case 'damaged-in-memory': return 'it is missing: it was damaged in memory before the writeout';
    case 'device': return 'it is missing: the dump device was too small or failed';
    default: return 'it is missing';
  }
}

/** Bytes of physical memory from a dump, page by page; a page not in the dump is a fault at its address. */
export function readPhysical(dump: ProbedDump, paddr: bigint, len: number, ranges: readonly MissingRange[] = []): Buffer {
  const out = Buffer.alloc(len);
  let done = 0;
  while (done < len) {
    const pa = paddr + BigInt(done);
    const pfn = pa / PAGE_SIZE_N;
    const within = Number(pa % PAGE_SIZE_N);
    const n = Math.min(PAGE_SIZE - within, len - done);
    let page: Uint8Array;
    try {
      page = dump.readPage(pfn);
    } catch (e) {
      if (!(e instanceof FaultError)) throw e;
      const why = whyAbsent(ranges, pfn);
      throw new FaultError(`physical address ${hex(pa)} is not in the dump (page ${hex(pfn)} was not saved${why ? `: ${why}` : ''})`, { address: pa, space: 'phys' });
    }
    Buffer.from(page).copy(out, done, within, within + n);
    done += n;
  }
  return out;
}

/** xxd-style hex dump with physical addresses. */
export function hexDump(base: bigint, bytes: Uint8Array): string {
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = bytes.subarray(i, i + 16);
    const hexs = Array.from(row, (b) => b.toString(16).padStart(2, '0'));
    const groups: string[] = [];
    for (let g = 0; g < 16; g += 2) groups.push((hexs[g] ?? '  ') + (hexs[g + 1] ?? '  '));
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${(base + BigInt(i)).toString(16).padStart(16, '0')}: ${groups.join(' ')}  ${ascii}`);
  }
  return lines.join('\n') + '\n';
}

const DUMP_LEVEL_BITS: Array<[number, string]> = [[1, 'DUMP_LEVEL_HEADER'], [2, 'DUMP_LEVEL_KERN'], [4, 'DUMP_LEVEL_USED'], [8, 'DUMP_LEVEL_ALL_RAM']];

type Rows = Array<[string, string]>;

/** The LKCD header fields under the names crash's `help -L` uses, then the arch header's size and CPUs. */
function lkcdHeaderRows(d: LkcdDump): { rows: Rows; level: string } {
  const h = d.header;
  const lv = DUMP_LEVEL_BITS.filter(([b]) => h.dh_dump_level & b).map(([, n]) => n).join('|') || 'DUMP_LEVEL_NONE';
  const comp = ['DUMP_COMPRESS_NONE', 'DUMP_COMPRESS_RLE', 'DUMP_COMPRESS_GZIP'][h.dh_dump_compress] ?? '?';
  const asm = d.asmHeader;
  return {
    level: lv,
    rows: [
      ['dh_magic_number', `${hex(h.dh_magic_number)}  (DUMP_MAGIC_NUMBER)`],
      ['dh_version', `${h.dh_version}  (LKCD_DUMP_V${h.dh_version & 0xf})`],
      ['dh_header_size', `${h.dh_header_size}`],
      ['dh_dump_level', `${h.dh_dump_level}  (${lv})`],
      ['dh_page_size', `${h.dh_page_size}`],
      ['dh_memory_size', `${h.dh_memory_size}`],
      ['dh_memory_start', hex(h.dh_memory_start)],
      ['dh_memory_end', hex(h.dh_memory_end)],
      ['dh_num_pages', `${h.dh_num_pages}`],
      ['dh_panic_string', h.dh_panic_string],
      ['dh_time', new Date(Number(h.dh_time.tv_sec) * 1000).toUTCString()],
      ['dh_utsname_sysname', h.dh_utsname_sysname],
      ['dh_utsname_nodename', h.dh_utsname_nodename],
      ['dh_utsname_release', h.dh_utsname_release],
      ['dh_utsname_version', h.dh_utsname_version],
      ['dh_utsname_machine', h.dh_utsname_machine],
      ['dh_utsname_domainname', h.dh_utsname_domainname],
      ['dh_current_task', hex(h.dh_current_task)],
      ['dh_dump_compress', `${h.dh_dump_compress}  (${comp})`],
      ['dh_dump_flags', `${hex(h.dh_dump_flags)}${h.dh_dump_flags & 1 ? '  (DUMP_FLAGS_NONDISRUPT)' : ''}`],
      ['dh_dump_device', hex(h.dh_dump_device)],
      ['dh_dump_buffer_size', `${h.dh_dump_buffer_size}`],
      ['dha_header_size', `${asm.dha_header_size}  (x86_64 dump_header_asm_t for NR_CPUS ${d.nrCpus})`],
      ['dha_smp_num_cpus', `${asm.dha_smp_num_cpus}`],
      ['dha_dumping_cpu', `${asm.dha_dumping_cpu}`],
    ],
  };
}

const KDUMP_STATUS_BITS: Array<[number, string]> = [
  [0x1, 'DUMP_DH_COMPRESSED_ZLIB'], [0x2, 'DUMP_DH_COMPRESSED_LZO'], [0x4, 'DUMP_DH_COMPRESSED_SNAPPY'],
  [0x8, 'DUMP_DH_COMPRESSED_INCOMPLETE'], [0x10, 'DUMP_DH_EXCLUDED_VMEMMAP'], [0x20, 'DUMP_DH_COMPRESSED_ZSTD'],
];

/** disk_dump_header and kdump_sub_header of a kdump-compressed file, under makedumpfile's (and crash's help -D) names. */
function diskdumpRows(d: KdumpCompressedDump): Rows {
  const h = d.header;
  const sub = d.sub;
  const v = h.header_version;
  const status = KDUMP_STATUS_BITS.filter(([b]) => h.status & b).map(([, n]) => n).join('|');
  const rows: Rows = [
    ['signature', JSON.stringify(Buffer.from(h.signature).toString('latin1'))],
    ['header_version', `${v}`],
    ['utsname.sysname', h.utsname.sysname],
    ['utsname.nodename', h.utsname.nodename],
    ['utsname.release', h.utsname.release],
    ['utsname.version', h.utsname.version],
    ['utsname.machine', h.utsname.machine],
    ['timestamp', `${new Date(Number(h.tv_sec) * 1000).toUTCString()} (${h.tv_sec}.${String(h.tv_usec).padStart(6, '0')})`],
    ['status', `${hex(h.status)}${status ? `  (${status})` : ''}`],
    ['block_size', `${h.block_size}`],
    ['sub_hdr_size', `${h.sub_hdr_size}`],
    ['bitmap_blocks', `${h.bitmap_blocks}`],
    ['max_mapnr', `${h.max_mapnr}`],
    ['total_ram_blocks', `${h.total_ram_blocks}`],
    ['device_blocks', `${h.device_blocks}`],
    ['written_blocks', `${h.written_blocks}`],
    ['current_cpu', `${h.current_cpu}`],
    ['nr_cpus', `${h.nr_cpus}`],
    ['phys_base', hex(sub.phys_base)],
    ['dump_level', `${sub.dump_level}  (makedumpfile -d ${sub.dump_level})`],
  ];
  if (v >= 2) rows.push(['split', `${sub.split}${sub.split ? `  (pfn ${hex(d.startPfn)}-${hex(d.endPfn)})` : ''}`]);
  if (v >= 3) rows.push(['offset_vmcoreinfo', `${hex(sub.offset_vmcoreinfo)}  (${sub.size_vmcoreinfo} bytes)`]);
  if (v >= 4) rows.push(['offset_note', `${hex(sub.offset_note)}  (${sub.size_note} bytes: ${d.notes.notes.map((n) => n.name).join(', ') || 'none'})`]);
  if (v >= 5) rows.push(['offset_eraseinfo', `${hex(sub.offset_eraseinfo)}  (${sub.size_eraseinfo} bytes)`]);
  if (v >= 6) rows.push(['max_mapnr_64', `${sub.max_mapnr_64}`]);
  return rows;
}

/** What an ELF vmcore says about itself: its program headers and notes. */
function elfRows(d: ElfVmcoreDump): Rows {
  const info = d.notes.vmcoreinfo;
  const key = (k: string): string => (info ? new RegExp(`^${k.replace(/[()]/g, '\\$&')}=(.*)$`, 'm').exec(info)?.[1] ?? '' : '');
  const loads = d.loads;
  const lo = loads.reduce((m, l) => (l.paddr < m ? l.paddr : m), loads[0]?.paddr ?? 0n);
  const hi = loads.reduce((m, l) => (l.paddr + l.memsz > m ? l.paddr + l.memsz : m), 0n);
  return [
    ['e_type', 'ET_CORE'],
    ['e_machine', 'EM_X86_64'],
    ['PT_LOAD', `${loads.length} segments, paddr ${hex(lo)}-${hex(hi)}`],
    ['PT_NOTE', `${d.notes.notes.length} notes: ${[...new Set(d.notes.notes.map((n) => n.name))].join(', ') || 'none'}`],
    ['NT_PRSTATUS', `${d.notes.prstatus.length} CPU${d.notes.prstatus.length === 1 ? '' : 's'}${d.notes.prstatus[0] ? `, rip ${hex(d.notes.prstatus[0].regs.ip)}` : ''}`],
    ['OSRELEASE', key('OSRELEASE')],
    ['CRASHTIME', key('CRASHTIME')],
    ['BUILD-ID', key('BUILD-ID')],
  ];
}

/**
 * The dump's own headers, for `lkcd show --json`: `header` is the format's main one (LKCD's
 * dump_header, a kdump-compressed file's disk_dump_header, an ELF vmcore's loads and notes), then
 * what goes with it (LKCD's dump_header_asm and its NR_CPUS, the kdump_sub_header, VMCOREINFO).
 */
export function formatHeaders(d: ProbedDump): Record<string, unknown> {
  if (d instanceof LkcdDump) return { header: d.header, dump_header_asm: d.asmHeader, nr_cpus: d.nrCpus };
  if (d instanceof KdumpCompressedDump) {
    return { header: { ...d.header, signature: Buffer.from(d.header.signature).toString('latin1') }, kdump_sub_header: d.sub, vmcoreinfo: d.vmcoreinfo };
  }
  if (d instanceof ElfVmcoreDump) {
    return { header: { loads: d.loads, notes: d.notes.notes.map((n) => ({ name: n.name, type: n.type, size: n.desc.length })) }, vmcoreinfo: d.notes.vmcoreinfo };
  }
  return { header: null };
}

/**
 * `lkcd show N`: the header fields of the dump's own format (LKCD's under the names crash's `help
 * -L` uses, the disk_dump_header and kdump_sub_header of a kdump-compressed file, an ELF vmcore's
 * program headers and notes), then our figures, then where every frame went.
 */
export function showText(o: OpenedDump): string {
  const r = o.rec;
  const d = o.dump;
  let rows: Rows;
  let level = '';
  if (d instanceof LkcdDump) ({ rows, level } = lkcdHeaderRows(d));
  else if (d instanceof KdumpCompressedDump) rows = diskdumpRows(d);
  else if (d instanceof ElfVmcoreDump) rows = elfRows(d);
  else throw new InternalError(`lkcd show: no header printer for format ${d.attrs['file.format']}`);
  const formatName = { lkcd: 'LKCD', diskdump: 'kdump-compressed (makedumpfile, libkdumpfile\'s "diskdump")', elf: 'ELF vmcore' }[r.format];
  const ours: Rows = [
    ['dump', `${r.n} in ${o.dir}`],
    ['design', `${r.design}${r.design === 'import' && r.source ? ` (from ${r.source})` : ''}`],
    ['format', `${formatName}: ${d.attrs['file.description']}`],
    ['file', o.file],
    ['pages', `${r.pages} (${r.pages_compressed} compressed${r.compression !== 'none' ? `, ${r.compression}` : ''})`],
  ];
  if (r.rle_convention) {
    ours.push(['RLE runs', r.rle_convention === 'kernel' ? 'the kernel\'s: 00 N V is N+1 copies (as crash reads it)' : 'libkdumpfile\'s: 00 N V is N copies (another writer\'s)']);
  }
  if (!r.panic_string || r.format !== 'lkcd') ours.push(['panic', r.panic_string ? `${r.panic_string} (from the log)` : '(none found)']);
  ours.push(
    ['raw bytes', `${r.raw_bytes}`],
    ['stored bytes', `${r.stored_bytes} (ratio ${(r.raw_bytes / Math.max(r.stored_bytes, 1)).toFixed(2)})`],
    ['complete', r.state === 'complete' ? 'yes' : r.state === 'truncated' ? `no: TRUNCATED, ${missingText(r.missing_pages, r.notes)}`
      : `no: DAMAGED, ${r.damaged_pages} pages damaged${r.missing_pages ? `, ${r.missing_pages} pages missing` : ''}`],
    ['checksums', r.checksum === 'verified' ? 'verified: every header, record and page matches' : r.checksum === 'failed' ? 'FAILED: see lkcd verify' : 'none in the dump (unverified)'],
    ['sha256', r.sha256],
    ...(r.same_as != null ? [['same as', `dump ${r.same_as}: byte-identical (same sha256), saved from a device not marked saved: another crash, or a restored device`] as [string, string]] : []),
    ['signature', `${r.signature}  ${r.signature_text}`],
    ['kernel log', r.log_error ? `not read: ${r.log_error}` : 'read from the dump (lkcd dmesg)'],
    ['vmlinux', vmlinuxShowText(vmlinuxStatus(o.dir, r.n, o.dump, o.syms?.byName ?? null))],
  );
  for (const note of r.notes.split('\n')) if (note.startsWith('cut short: ')) ours.push(['cut short', note.slice('cut short: '.length)]);
  const frames = d instanceof LkcdDump ? lkcdFrames(o, d, level) : otherFrames(o);
  const all = [...rows, ...ours, ...frames];
  const w = Math.max(...all.map(([k]) => k.length));
  const fmt = (list: Rows): string[] => list.map(([k, v]) => `${k.padStart(w)}: ${v}`);
  return [...fmt(rows), '', ...fmt(ours), '', ...fmt(frames)].join('\n') + '\n';
}

/** Missing ranges listed per reason by lkcd show (all of them are in lkcd show --json's ranges). */
const SHOWN_RANGES = 64;

/** Where every frame went, for an LKCD dump: it adds up to dh_memory_size. */
function lkcdFrames(o: OpenedDump, d: LkcdDump, lv: string): Rows {
  const r = o.rec;
  const memory = Number(d.header.dh_memory_size);
  // dh_memory_size from the dump itself: rows indexed before schema 4 have no figure.
  const a = accountFrames(memory, r.pages, o.ranges, r.not_selected_pages);
  const byReason = Object.entries(a.missing).map(([k, v]) => `${k} ${v}`).join(', ');
  const frames: Rows = [
    ['frames of RAM', memory === 0 ? 'not given (dh_memory_size is 0, as some writers leave it)' : `${a.memory} (dh_memory_size)`],
    ['saved', `${a.saved}`],
    ['damaged', `${a.damaged}${a.damaged ? ' (kept in the dump, read as not present)' : ''}`],
    ['missing', `${a.missingTotal}${byReason ? ` (${byReason})` : ''}`],
    ['dumper', `${a.dumper} (the dumper's own frames at the crash)`],
    ['not selected', a.notSelected === null ? 'unknown (the dump\'s mem_map could not be read)' : `${a.notSelected} (by dump level ${lv})`],
  ];
  if (memory > 0) {
    frames.push(['accounted', a.notSelected === null ? `${a.sum} of ${a.memory}; the rest were not selected or are unknown`
      : a.sum === a.memory ? `${a.sum} = dh_memory_size` : `${a.sum}, dh_memory_size is ${a.memory}: ${a.memory - a.sum} frames unaccounted for`]);
  }
  for (const [reason, label] of [['damaged', 'damaged at'], ['did-not-fit', 'did not fit'], ['pass-dropped', 'pass dropped'], ['damaged-in-memory', 'damaged in memory'], ['device', 'device'], ['unspecified', 'missing']] as const) {
    const list = o.ranges.filter((x) => (x.reason ?? 'unspecified') === reason);
    if (!list.length) continue;
    const shown = list.slice(0, SHOWN_RANGES).map((x) => (x.end_pfn - x.start_pfn === 1n ? hex(x.start_pfn) : `${hex(x.start_pfn)}-${hex(x.end_pfn - 1n)}`));
    frames.push([label, `pfn ${shown.join(', ')}${list.length > shown.length ? `, ... (${list.length} ranges)` : ''}`]);
  }
  return frames;
}

/** Where every frame went, for a kdump-compressed or ELF dump: what it holds, and what it leaves out. */
function otherFrames(o: OpenedDump): Rows {
  const r = o.rec;
  const memory = Number(o.dump.attrs['dump.memory_pages']);
  const kdumpc = r.format === 'diskdump';
  const out = memory - r.pages - r.damaged_pages;
  return [
    ['frames of RAM', `${memory} (${kdumpc ? 'max_mapnr' : 'up to the highest page a PT_LOAD covers'})`],
    ['saved', `${r.pages}`],
    ['damaged', `${r.damaged_pages}${r.damaged_pages ? ' (kept in the dump, read as not present)' : ''}`],
    ['not in the dump', `${out} (${kdumpc ? `excluded by makedumpfile's dump level ${r.level}, or not RAM` : 'in no PT_LOAD\'s file bytes: excluded (zero-filled past p_filesz), or not RAM'})`],
  ];
}
