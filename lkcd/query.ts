import fs from 'node:fs';
import path from 'node:path';
import { DumpError, FaultError, hex, UsageError } from '../src/codec/index.js';
import type { DumpHeader } from '../src/dump/index.js';
import { PAGE_SIZE, PAGE_SIZE_N, type MachineRoot } from '../src/machine/index.js';
import { accountFrames, openDump, type ProbedDump } from '../src/dump/index.js';
import { DumpIndex, type DumpRecord, type MissingRange } from '../src/store/index.js';
import { dumpDirOf } from './dumpdir.js';
import { loadSysconfig, type SysconfigDump } from './sysconfig.js';
import { SymbolTable } from './symbols.js';
import { vmlinuxShowText, vmlinuxStatus } from './debuginfo.js';

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
  syms: SymbolTable;
  /** The ranges the index lists for the dump: missing ones, the dumper's, the damaged pages. */
  ranges: MissingRange[];
  close(): void;
}

/**
 * Opens dump N through the format table, its pages found by the index,
 * never by walking dump.N: a page the index does not hold (missing, or
 * damaged) reads as not present.
 */
export function openIndexedDump(dumpdir: string, n: number): OpenedDump {
  const index = DumpIndex.open(dumpdir, { readonly: true });
  const rec = index.getDump(n);
  if (!rec) {
    index.close();
    throw new DumpError('NOINPUT', `no dump ${n} in ${dumpdir} (see lkcd list)`);
  }
  const dir = dumpDirOf(dumpdir, n);
  const file = path.join(dir, `dump.${n}`);
  if (!fs.existsSync(file)) {
    index.close();
    throw new DumpError('NOINPUT', `${file}: dump ${n} is indexed but its file is gone (run lkcd reindex)`, { file });
  }
  let dump: ProbedDump;
  let ranges: MissingRange[];
  let syms: SymbolTable;
  try {
    ranges = index.missing(n);
    dump = openDump(file, { index: (pfn) => index.pageLocation(n, pfn) });
  } catch (e) {
    index.close();
    throw e;
  }
  try {
    syms = SymbolTable.load(path.join(dir, `map.${n}`));
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

/** `lkcd show N`: the header fields under the names crash's `help -L` uses, then our figures and where every frame went. */
export function showText(o: OpenedDump, header: DumpHeader): string {
  const h = header;
  const r = o.rec;
  const lv = DUMP_LEVEL_BITS.filter(([b]) => h.dh_dump_level & b).map(([, n]) => n).join('|') || 'DUMP_LEVEL_NONE';
  const comp = ['DUMP_COMPRESS_NONE', 'DUMP_COMPRESS_RLE', 'DUMP_COMPRESS_GZIP'][h.dh_dump_compress] ?? '?';
  const rows: Array<[string, string]> = [
    ['dh_magic_number', `${h.dh_magic_number.toString(16)}  (DUMP_MAGIC_NUMBER)`],
    ['dh_version', `${h.dh_version}  (LKCD_DUMP_V${h.dh_version & 0xf})`],
    ['dh_header_size', `${h.dh_header_size}`],
    ['dh_dump_level', `${h.dh_dump_level}  (${lv})`],
    ['dh_page_size', `${h.dh_page_size}`],
    ['dh_memory_size', `${h.dh_memory_size}`],
    ['dh_memory_start', h.dh_memory_start.toString(16)],
    ['dh_memory_end', h.dh_memory_end.toString(16)],
    ['dh_num_pages', `${h.dh_num_pages}`],
    ['dh_panic_string', h.dh_panic_string],
    ['dh_time', new Date(Number(h.dh_time.tv_sec) * 1000).toUTCString()],
    ['dh_utsname_sysname', h.dh_utsname_sysname],
    ['dh_utsname_nodename', h.dh_utsname_nodename],
    ['dh_utsname_release', h.dh_utsname_release],
    ['dh_utsname_version', h.dh_utsname_version],
    ['dh_utsname_machine', h.dh_utsname_machine],
    ['dh_utsname_domainname', h.dh_utsname_domainname],
    ['dh_current_task', h.dh_current_task.toString(16)],
    ['dh_dump_compress', `${h.dh_dump_compress}  (${comp})`],
    ['dh_dump_flags', `${h.dh_dump_flags.toString(16)}${h.dh_dump_flags & 1 ? '  (DUMP_FLAGS_NONDISRUPT)' : ''}`],
    ['dh_dump_device', h.dh_dump_device.toString(16)],
    ['dh_dump_buffer_size', `${h.dh_dump_buffer_size}`],
  ];
  // dh_memory_size from the dump itself: rows indexed before schema 4 have no figure.
  const a = accountFrames(Number(h.dh_memory_size), r.pages, o.ranges, r.not_selected_pages);
  const byReason = Object.entries(a.missing).map(([k, v]) => `${k} ${v}`).join(', ');
  const ours: Array<[string, string]> = [
    ['dump', `${r.n} in ${o.dir}`],
    ['pages', `${r.pages} (${r.pages_compressed} compressed)`],
    ['raw bytes', `${r.raw_bytes}`],
    ['stored bytes', `${r.stored_bytes} (ratio ${(r.raw_bytes / Math.max(r.stored_bytes, 1)).toFixed(2)})`],
    ['complete', r.state === 'complete' ? 'yes' : r.state === 'truncated' ? `no: TRUNCATED, ${r.missing_pages} pages missing`
      : `no: DAMAGED, ${r.damaged_pages} pages damaged${r.missing_pages ? `, ${r.missing_pages} pages missing` : ''}`],
    ['checksums', r.checksum === 'verified' ? 'verified: every header, record and page matches' : r.checksum === 'failed' ? 'FAILED: see lkcd verify' : 'none in the dump (unverified)'],
    ['sha256', r.sha256],
    ...(r.same_as != null ? [['same as', `dump ${r.same_as}: byte-identical (same sha256), saved from a device not marked saved: another crash, or a restored device`] as [string, string]] : []),
    ['signature', `${r.signature}  ${r.signature_text}`],
    ['vmlinux', vmlinuxShowText(vmlinuxStatus(o.dir, r.n, o.dump, o.syms.byName))],
  ];
  const frames: Array<[string, string]> = [
    ['frames of RAM', `${a.memory} (dh_memory_size)`],
    ['saved', `${a.saved}`],
    ['damaged', `${a.damaged}${a.damaged ? ' (kept in the dump, read as not present)' : ''}`],
    ['missing', `${a.missingTotal}${byReason ? ` (${byReason})` : ''}`],
    ['dumper', `${a.dumper} (the dumper's own frames at the crash)`],
    ['not selected', a.notSelected === null ? 'unknown (the dump\'s mem_map could not be read)' : `${a.notSelected} (by dump level ${lv})`],
    ['accounted', a.notSelected === null ? `${a.sum} of ${a.memory}; the rest were not selected or are unknown`
      : a.sum === a.memory ? `${a.sum} = dh_memory_size` : `${a.sum}, dh_memory_size is ${a.memory}: ${a.memory - a.sum} frames unaccounted for`],
  ];
  for (const [reason, label] of [['damaged', 'damaged at'], ['did-not-fit', 'did not fit'], ['pass-dropped', 'pass dropped'], ['damaged-in-memory', 'damaged in memory'], ['device', 'device'], ['unspecified', 'missing']] as const) {
    const list = o.ranges.filter((x) => (x.reason ?? 'unspecified') === reason);
    if (!list.length) continue;
    const shown = list.slice(0, 8).map((x) => (x.end_pfn - x.start_pfn === 1n ? hex(x.start_pfn) : `${hex(x.start_pfn)}-${hex(x.end_pfn - 1n)}`));
    frames.push([label, `pfn ${shown.join(', ')}${list.length > shown.length ? `, ... (${list.length} ranges)` : ''}`]);
  }
  const all = [...rows, ...ours, ...frames];
  const w = Math.max(...all.map(([k]) => k.length));
  const fmt = (list: Array<[string, string]>): string[] => list.map(([k, v]) => `${k.padStart(w)}: ${v}`);
  return [...fmt(rows), '', ...fmt(ours), '', ...fmt(frames)].join('\n') + '\n';
}
