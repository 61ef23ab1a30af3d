import fs from 'node:fs';
import path from 'node:path';
import { DumpError, FaultError, hex, UsageError } from '../src/codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N, type MachineRoot } from '../src/machine/index.js';
import { openLkcdFile, type LkcdDump } from '../src/dump/index.js';
import { DumpIndex, type DumpRecord } from '../src/store/index.js';
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
  dump: LkcdDump;
  syms: SymbolTable;
  close(): void;
}

/** Opens dump N through the index: pages are found by the index, never by walking dump.N. */
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
  const dump = openLkcdFile(file, { index: (pfn) => index.pageLocation(n, pfn) });
  const syms = SymbolTable.load(path.join(dir, `map.${n}`));
  return { rec, dir, file, dump, syms, close: () => { dump.close(); index.close(); } };
}

/** Bytes of physical memory from a dump, page by page; a page not in the dump is a fault at its address. */
export function readPhysical(dump: LkcdDump, paddr: bigint, len: number): Buffer {
  const out = Buffer.alloc(len);
  let done = 0;
  while (done < len) {
    const pa = paddr + BigInt(done);
    const pfn = pa / PAGE_SIZE_N;
    const within = Number(pa % PAGE_SIZE_N);
    const n = Math.min(PAGE_SIZE - within, len - done);
    if (!dump.record(pfn)) throw new FaultError(`physical address ${hex(pa)} is not in the dump (page ${hex(pfn)} was not saved)`, { address: pa, space: 'phys' });
    Buffer.from(dump.readPage(pfn)).copy(out, done, within, within + n);
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

/** `lkcd show N`: the header fields under the names crash's `help -L` uses, then our figures. */
export function showText(o: OpenedDump): string {
  const h = o.dump.header;
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
  const ours: Array<[string, string]> = [
    ['dump', `${r.n} in ${o.dir}`],
    ['pages', `${r.pages} (${r.pages_compressed} compressed)`],
    ['raw bytes', `${r.raw_bytes}`],
    ['stored bytes', `${r.stored_bytes} (ratio ${(r.raw_bytes / Math.max(r.stored_bytes, 1)).toFixed(2)})`],
    ['complete', r.complete ? 'yes' : `no: TRUNCATED, ${r.missing_pages} pages missing`],
    ['sha256', r.sha256],
    ['signature', `${r.signature}  ${r.signature_text}`],
    ['vmlinux', vmlinuxShowText(vmlinuxStatus(o.dir, r.n, o.dump, o.syms.byName))],
  ];
  const w = Math.max(...[...rows, ...ours].map(([k]) => k.length));
  return [...rows, ['', ''] as [string, string], ...ours].map(([k, v]) => (k ? `${k.padStart(w)}: ${v}` : '')).join('\n') + '\n';
}
