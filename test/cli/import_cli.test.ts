/**
 * `lkcd import` as an admin runs it, on dumps our writer did not make, of
 * one 16 MiB machine whose RAM the test reads from its image first (the
 * truth): LKCD files from the independent writer (test/tools/foreign_lkcd.ts:
 * other NR_CPUS, v8 and v9, pages out of order, gaps, RLE in both
 * conventions, no END record, a damaged page), and the real makedumpfile's
 * ELF (-E) and kdump-compressed (-c, -l) files made from `machine
 * export-vmcore`. After each import every query command works on the dump:
 * `lkcd read` gives RAM's bytes, `lkcd dmesg` prints what `machine dmesg`
 * printed (through the given System.map, or the dump's own VMCOREINFO),
 * `lkcd verify` exits as the dump's state says, `lkcd show` names the
 * format, design and RLE convention. Bad input: one line and the table's
 * exit status.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAGE_SIZE } from '../../src/machine/index.js';
import { openIndexedDump } from '../../lkcd/query.js';
import { cleanFailure, dumpDirOf, ensureBuilt, listJson, ok, run, type RunResult } from '../helpers/lkcd.js';
import { makeTempDir, removeTempDir } from '../helpers/machine.js';
import { needs, runTool } from '../helpers/tools.js';
import { readerHashes, sha1 } from '../helpers/kdump.js';
import { foreignLkcd, type ForeignCompress, type ForeignPage } from '../tools/foreign_lkcd.js';

const DUMP_TRUNCATED = 3;
const DUMP_DAMAGED = 4;
const EX_USAGE = 64;
const EX_DATAERR = 65;
const EX_NOINPUT = 66;
const EX_UNAVAILABLE = 69;
const EX_IOERR = 74;
const RELEASE = '5.4.0-lkcd-lowmem';

let tmp: string;
let root: string;
let ram: Buffer;
let dmesg: string;
let map: string;
/** Index of the next dump an import gets. */
let next = 0;

beforeAll(() => {
  ensureBuilt();
  tmp = makeTempDir('import-cli');
  root = path.join(tmp, 'root');
  ok(run('machine', root, ['power-on', '--mem', '16M', '--profile', 'database', '--seed', '29']));
  // The truth: RAM as the image holds it, and the log as the running kernel prints it.
  ram = fs.readFileSync(path.join(root, 'lib', 'machine', 'ram'));
  dmesg = ok(run('machine', root, ['dmesg']));
  map = path.join(root, 'boot', `System.map-${RELEASE}`);
}, 120_000);
afterAll(() => { if (tmp) removeTempDir(tmp); });

const page = (pfn: number): Buffer => ram.subarray(pfn * PAGE_SIZE, (pfn + 1) * PAGE_SIZE);
const frames = (): number => ram.length / PAGE_SIZE;

/** Imports `file`; checks the line and the status; returns the new dump's number. */
function importOk(file: string, args: string[], status = 0, degradedWords: string[] = []): { n: number; out: string } {
  const r = run('lkcd', root, ['import', file, ...args]);
  const n = next++;
  if (status === 0) ok(r);
  else cleanFailure(r, 'lkcd', status, ...degradedWords);
  expect(r.stdout).toMatch(new RegExp(`^lkcd import: imported ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} as dump ${n} \\(design import, format \\w+`, 'm'));
  return { n, out: r.stdout };
}

/**
 * Every page the dump holds, read in process through openIndexedDump (what
 * `lkcd read` runs), against RAM; a few runs of it through the real CLI.
 */
function readsEqualRam(n: number, expectPresent: (pfn: number) => boolean): void {
  const o = openIndexedDump(dumpDirOf(root), n);
  const present: number[] = [];
  try {
    for (let pfn = 0; pfn < frames(); pfn++) {
      if (!expectPresent(pfn)) {
        expect(() => o.dump.readPage(BigInt(pfn)), `pfn ${pfn} should not be in dump ${n}`).toThrow(/not in the dump|damaged in the dump/);
        continue;
      }
      expect(Buffer.from(o.dump.readPage(BigInt(pfn))).equals(page(pfn)), `dump ${n} pfn ${pfn}`).toBe(true);
      present.push(pfn);
    }
  } finally {
    o.close();
  }
  expect(present.length).toBeGreaterThan(0);
  // Runs of present pages: the first, the longest and the last, read by the CLI.
  const runs: Array<[number, number]> = [];
  for (const p of present) {
    const last = runs[runs.length - 1];
    if (last && last[1] === p) last[1] = p + 1;
    else runs.push([p, p + 1]);
  }
  const longest = runs.reduce((a, b) => (b[1] - b[0] > a[1] - a[0] ? b : a));
  for (const [s, e] of [runs[0], longest, runs[runs.length - 1]]) {
    const out = path.join(tmp, `read-${n}-${s}`);
    ok(run('lkcd', root, ['read', String(n), '--paddr', `0x${(s * PAGE_SIZE).toString(16)}`, '--len', String((e - s) * PAGE_SIZE), '-o', out]));
    expect(fs.readFileSync(out).equals(ram.subarray(s * PAGE_SIZE, e * PAGE_SIZE)), `lkcd read ${n} pfns ${s}..${e}`).toBe(true);
  }
  const absent = Array.from({ length: frames() }, (_, p) => p).find((p) => !expectPresent(p));
  if (absent !== undefined) cleanFailure(run('lkcd', root, ['read', String(n), '--pfn', String(absent)]), 'lkcd', EX_DATAERR, 'is not in the dump');
}

const rowOf = (n: number): Record<string, unknown> => listJson(root).find((d) => d.n === n)!;

// ---- LKCD from another writer ------------------------------------------------------------------

/** Every frame of RAM, in the order `order` gives, without `gap`s. */
function ramPages(order: 'ordered' | 'shuffled', gap: (pfn: number) => boolean = () => false): ForeignPage[] {
  const pfns = Array.from({ length: frames() }, (_, p) => p).filter((p) => !gap(p));
  if (order === 'shuffled') {
    for (let i = pfns.length - 1; i > 0; i--) {
      const j = (i * 40503) % (i + 1);
      [pfns[i], pfns[j]] = [pfns[j], pfns[i]];
    }
  }
  return pfns.map((pfn) => ({ pfn, data: page(pfn) }));
}

/** Pages of the first MiB, which the kernel never uses: a gap there leaves the log and page tables whole. */
const lowGap = (pfn: number): boolean => pfn >= 0x20 && pfn < 0x100 && pfn % 3 !== 0;

interface LkcdCase {
  name: string;
  version: 8 | 9;
  nrCpus: number;
  compress: ForeignCompress;
  order: 'ordered' | 'shuffled';
  gap?: (pfn: number) => boolean;
}

const LKCD_CASES: LkcdCase[] = [
  { name: 'v9, NR_CPUS 8 (a 1,728-byte arch header), gzip, out of order, gaps', version: 9, nrCpus: 8, compress: 'gzip', order: 'shuffled', gap: lowGap },
  { name: 'v8, NR_CPUS 1, RLE as the kernel writes it', version: 8, nrCpus: 1, compress: 'rle-kernel', order: 'ordered' },
  { name: 'v9, NR_CPUS 128, RLE as libkdumpfile writes it, out of order', version: 9, nrCpus: 128, compress: 'rle-libkdumpfile', order: 'shuffled' },
  { name: 'v9, NR_CPUS 64, uncompressed, gaps', version: 9, nrCpus: 64, compress: 'none', order: 'ordered', gap: lowGap },
];

describe('lkcd import of LKCD dumps from another writer, with --map', () => {
  it.each(LKCD_CASES)('$name: list, show, read, dmesg, verify, analyze, export', (c) => {
    const pages = ramPages(c.order, c.gap);
    const file = path.join(tmp, `foreign-${c.nrCpus}-${c.compress}.lkcd`);
    fs.writeFileSync(file, foreignLkcd({ version: c.version, nrCpus: c.nrCpus, compress: c.compress, pages, release: RELEASE, nodename: 'elsewhere', panic: `foreign ${c.nrCpus}` }).bytes);
    const { n, out } = importOk(file, ['--map', map]);
    expect(out).toContain(`${pages.length} pages`);
    const rle = c.compress === 'rle-kernel' ? 'kernel' : c.compress === 'rle-libkdumpfile' ? 'libkdumpfile' : null;
    if (rle) expect(out).toContain(`RLE runs read the ${rle} way`);
    expect(rowOf(n)).toMatchObject({ design: 'import', format: 'lkcd', state: 'complete', checksum: 'unverified', rle_convention: rle, source: file, panic_string: `foreign ${c.nrCpus}`, log_error: '' });
    const listed = ok(run('lkcd', root, ['list'])).split('\n').find((l) => new RegExp(`^\\s+${n}\\s`).test(l))!;
    expect(listed).toMatch(new RegExp(`^\\s+${n}\\s+import\\s+lkcd\\s.*\\selsewhere\\s+${RELEASE}\\s+${pages.length}\\s.*\\scomplete\\s+[0-9a-f]{16}\\s+foreign ${c.nrCpus}$`));

    const show = ok(run('lkcd', root, ['show', String(n)]));
    expect(show).toMatch(new RegExp(`^\\s+dh_version: ${c.version}  \\(LKCD_DUMP_V${c.version}\\)$`, 'm'));
    expect(show).toMatch(new RegExp(`^\\s+dha_header_size: ${192 + 192 * c.nrCpus}  \\(x86_64 dump_header_asm_t for NR_CPUS ${c.nrCpus}\\)$`, 'm'));
    expect(show).toMatch(/^\s+design: import \(from .*\)$/m);
    if (rle) expect(show).toMatch(rle === 'kernel' ? /^\s+RLE runs: the kernel's: 00 N V is N\+1 copies/m : /^\s+RLE runs: libkdumpfile's: 00 N V is N copies/m);
    else expect(show).not.toMatch(/RLE runs/);
    const json = JSON.parse(ok(run('lkcd', root, ['show', String(n), '--json']))) as {
      header: { dh_version: number }; nr_cpus: number; dump_header_asm: { dha_smp_current_task: number[] }; record: { design: string };
    };
    expect([json.header.dh_version, json.nr_cpus, json.record.design]).toEqual([c.version, c.nrCpus, 'import']);
    expect(json.dump_header_asm.dha_smp_current_task).toHaveLength(c.nrCpus);

    const held = new Set(pages.map((p) => p.pfn));
    readsEqualRam(n, (pfn) => held.has(pfn));
    expect(ok(run('lkcd', root, ['dmesg', String(n)]))).toBe(dmesg);
    expect(ok(run('lkcd', root, ['verify', String(n)]))).toMatch(new RegExp(`^dump ${n}: ${pages.length} pages verified .*no checksums in the dump \\(unverified\\), sha256 matches\n$`));
    expect(ok(run('lkcd', root, ['analyze', String(n)]))).toMatch(/^\s+PID\s+ST\s+TASK\s+COMM$/m);
    const elf = path.join(tmp, `export-${n}.elf`);
    expect(ok(run('lkcd', root, ['export', String(n), '--elf', '-o', elf]))).toMatch(new RegExp(`^${elf}: \\d+ bytes`));
  });

  it('no END record (cut short): imported TRUNCATED, exit 3; the pages before the cut read as RAM, verify exits 3', () => {
    const pages = ramPages('ordered');
    const full = foreignLkcd({ version: 9, nrCpus: 16, compress: 'gzip', pages, release: RELEASE, end: false });
    const cut = full.records[3000];
    const file = path.join(tmp, 'cut-short.lkcd');
    fs.writeFileSync(file, full.bytes.subarray(0, cut.offset + 16 + Math.floor(cut.size / 2)));
    const { n, out } = importOk(file, ['--map', map], DUMP_TRUNCATED, ['is TRUNCATED: cut short, no END record, the file ends at offset 0x']);
    expect(out).toMatch(/TRUNCATED \(cut short, no END record, the file ends at offset 0x[0-9a-f]+\)/);
    expect(rowOf(n)).toMatchObject({ state: 'truncated', pages: 3000 });
    expect(ok(run('lkcd', root, ['show', String(n)]))).toMatch(/^\s+cut short: no END record, the file ends at offset 0x[0-9a-f]+; 3000 page records before it are whole/m);
    readsEqualRam(n, (pfn) => pfn < 3000);
    const v = run('lkcd', root, ['verify', String(n)]);
    cleanFailure(v, 'lkcd', DUMP_TRUNCATED, `dump ${n} is TRUNCATED: cut short`);
    expect(v.stdout).toMatch(new RegExp(`^dump ${n}: 3000 pages verified .*; TRUNCATED dump: cut short, no END record`));
    expect(ok(run('lkcd', root, ['show', String(n)]))).toMatch(/^\s+complete: no: TRUNCATED, cut short, no END record, the file ends at offset 0x[0-9a-f]+$/m);
  });

  it('a page whose gzip stream is broken: imported DAMAGED, exit 4 naming it; it reads as not present, every other page as RAM', () => {
    const pages = ramPages('ordered');
    const built = foreignLkcd({ version: 9, nrCpus: 2, compress: 'gzip', pages, release: RELEASE });
    const bad = built.records.find((r) => r.flags === 2 && r.size > 200 && r.pfn > 0x800)!;
    const bytes = Buffer.from(built.bytes);
    bytes[bad.offset + 16 + 100] ^= 0x5a;
    const file = path.join(tmp, 'damaged.lkcd');
    fs.writeFileSync(file, bytes);
    const { n } = importOk(file, ['--map', map], DUMP_DAMAGED, [`PFN 0x${bad.pfn.toString(16)}`]);
    expect(rowOf(n)).toMatchObject({ state: 'damaged', damaged_pages: 1 });
    readsEqualRam(n, (pfn) => pfn !== bad.pfn);
    cleanFailure(run('lkcd', root, ['read', String(n), '--pfn', String(bad.pfn)]), 'lkcd', EX_DATAERR, 'damaged');
    cleanFailure(run('lkcd', root, ['verify', String(n)]), 'lkcd', DUMP_DAMAGED, `paddr 0x${(bad.pfn * PAGE_SIZE).toString(16)}`);
  });

  it('without --map an LKCD dump\'s log cannot be found: imported, and lkcd dmesg says why in one line (66)', () => {
    const file = path.join(tmp, 'nomap.lkcd');
    fs.writeFileSync(file, foreignLkcd({ version: 9, nrCpus: 4, compress: 'gzip', pages: ramPages('ordered'), release: RELEASE }).bytes);
    const { n, out } = importOk(file, []);
    expect(out).toMatch(new RegExp(`^lkcd import: dump ${n}: no kernel log: no System.map, and lkcd dump without a VMCOREINFO note`, 'm'));
    cleanFailure(run('lkcd', root, ['dmesg', String(n)]), 'lkcd', EX_NOINPUT, `dump ${n} has no kernel log`, '--map');
    readsEqualRam(n, () => true);
  });
});

// ---- the real makedumpfile's files ---------------------------------------------------------------

/**
 * Pages wholly inside some PT_LOAD's file bytes, from the program headers
 * read here (ELF64 little-endian); and the last page of each PT_LOAD whose
 * p_memsz runs past its p_filesz.
 */
function elfFilePages(file: string): Set<number> & { lastZeroFill: Set<number> } {
  const b = fs.readFileSync(file);
  const phoff = Number(b.readBigUInt64LE(32));
  const phentsize = b.readUInt16LE(54);
  const phnum = b.readUInt16LE(56);
  const out = Object.assign(new Set<number>(), { lastZeroFill: new Set<number>() });
  const loads: Array<{ paddr: number; filesz: number; memsz: number }> = [];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (b.readUInt32LE(ph) !== 1) continue; // PT_LOAD
    loads.push({ paddr: Number(b.readBigUInt64LE(ph + 24)), filesz: Number(b.readBigUInt64LE(ph + 32)), memsz: Number(b.readBigUInt64LE(ph + 40)) });
  }
  for (const { paddr, filesz, memsz } of loads) {
    for (let a = Math.ceil(paddr / PAGE_SIZE) * PAGE_SIZE; a + PAGE_SIZE <= paddr + filesz; a += PAGE_SIZE) out.add(a / PAGE_SIZE);
    // The tail's last page, when another load's file bytes start right after it.
    const end = paddr + memsz;
    if (memsz > filesz && loads.some((l) => l.paddr === end && l.filesz > 0)) out.lastZeroFill.add(end / PAGE_SIZE - 1);
  }
  return out;
}

const mdf = needs('makedumpfile', '/usr/bin/python3', 'crash');
describe(`lkcd import of what the real makedumpfile made of machine export-vmcore${mdf.reason}`, () => {
  let vmcore: string;
  beforeAll(() => {
    if (mdf.skip) return;
    vmcore = path.join(tmp, 'live.elf');
    ok(run('machine', root, ['export-vmcore', '-o', vmcore]));
  });

  mdf.it('makedumpfile -E -d 31: an ELF vmcore; no --map, the log through its VMCOREINFO; pages past p_filesz are not in the dump (nor in libkdumpfile, but for one page each)', () => {
    const file = path.join(tmp, 'mdf-E.elf');
    const r = runTool('makedumpfile', ['-E', '-d', '31', vmcore, file], 300);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const { n } = importOk(file, []);
    expect(rowOf(n)).toMatchObject({ design: 'import', format: 'elf', compression: 'none', state: 'complete', checksum: 'unverified', log_error: '' });
    const held = elfFilePages(file);
    expect(held.size).toBeLessThan(frames());
    readsEqualRam(n, (pfn) => held.has(pfn));
    // libkdumpfile reads the file's pages as RAM and has no data past p_filesz, but for the last page
    // of each such tail, which it reads as zeros, and page 0, zeros whatever a PT_LOAD holds (known-deviations.txt).
    const all = Array.from({ length: frames() }, (_, p) => [BigInt(p * PAGE_SIZE), PAGE_SIZE] as [bigint, number]);
    const theirs = readerHashes('kdumpfile', file, all, tmp);
    const zero = sha1(Buffer.alloc(PAGE_SIZE));
    expect(held.lastZeroFill.size).toBeGreaterThan(0);
    all.forEach((_a, i) => {
      if (i > 0) expect(theirs[i], `pfn ${i}`).toBe(held.has(i) ? sha1(page(i)) : held.lastZeroFill.has(i) ? zero : 'NODATA');
    });
    expect(ok(run('lkcd', root, ['dmesg', String(n)]))).toBe(dmesg);
    expect(ok(run('lkcd', root, ['verify', String(n)]))).toMatch(new RegExp(`^dump ${n}: ${held.size} pages verified \\(0 compressed`));
    const show = ok(run('lkcd', root, ['show', String(n)]));
    expect(show).toMatch(/^\s+e_type: ET_CORE$/m);
    expect(show).toMatch(new RegExp(`^\\s+OSRELEASE: ${RELEASE}$`, 'm'));
    expect(show).toMatch(/^\s+format: ELF vmcore: /m);
  });

  mdf.it.for([['-c', 'zlib'], ['-l', 'lzo']] as const)('makedumpfile %s -d 31: kdump-compressed; every page libkdumpfile finds we find, equal to RAM; log, verify, show, export (crash opens it)', ([flag, codec]) => {
    const file = path.join(tmp, `mdf${flag}.kdump`);
    const r = runTool('makedumpfile', [flag, '-d', '31', vmcore, file], 300);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const { n } = importOk(file, []);
    expect(rowOf(n)).toMatchObject({ format: 'diskdump', compression: codec, level: 31, state: 'complete', log_error: '' });
    const all = Array.from({ length: frames() }, (_, p) => [BigInt(p * PAGE_SIZE), PAGE_SIZE] as [bigint, number]);
    const theirs = readerHashes('kdumpfile', file, all, tmp);
    const held = new Set(theirs.map((h, i) => (h === 'NODATA' ? -1 : i)).filter((i) => i >= 0));
    expect(held.size).toBeGreaterThan(100);
    held.forEach((pfn) => expect(theirs[pfn], `libkdumpfile pfn ${pfn}`).toBe(sha1(page(pfn))));
    readsEqualRam(n, (pfn) => held.has(pfn));
    expect(ok(run('lkcd', root, ['dmesg', String(n)]))).toBe(dmesg);
    expect(ok(run('lkcd', root, ['verify', String(n)]))).toMatch(new RegExp(`^dump ${n}: ${held.size} pages verified \\(\\d+ compressed, \\d+ raw\\), no checksums`));
    const show = ok(run('lkcd', root, ['show', String(n)]));
    expect(show).toMatch(/^\s+signature: "KDUMP   "$/m);
    expect(show).toMatch(/^\s+dump_level: 31  \(makedumpfile -d 31\)$/m);
    expect(show).toMatch(new RegExp(`^\\s+status: 0x[0-9a-f]+  \\(DUMP_DH_COMPRESSED_${codec.toUpperCase()}\\)$`, 'm'));
    const elf = path.join(tmp, `reexport-${n}.elf`);
    ok(run('lkcd', root, ['export', String(n), '--elf', '-o', elf]));
    expect(runTool('crash', ['--osrelease', elf]).stdout).toBe(`${RELEASE}\n`);
  });
});

// ---- what import refuses ----------------------------------------------------------------------------

describe('lkcd import refuses, in one line, with the table\'s status', () => {
  const lastN = (): number => (listJson(root).at(-1)?.n as number | undefined) ?? -1;

  it('the same file twice (by sha256), saying which dump it is: 64, nothing added', () => {
    const file = path.join(tmp, 'twice.lkcd');
    fs.writeFileSync(file, foreignLkcd({ version: 9, nrCpus: 8, compress: 'gzip', pages: ramPages('ordered').slice(0, 300), release: RELEASE }).bytes);
    const { n } = importOk(file, []);
    const copy = path.join(tmp, 'twice-copy.lkcd');
    fs.copyFileSync(file, copy);
    const before = lastN();
    cleanFailure(run('lkcd', root, ['import', copy]), 'lkcd', EX_USAGE, `is already dump ${n}`, 'same sha256');
    expect(lastN()).toBe(before);
  });

  const BAD: Array<[string, () => string, number, string[]]> = [
    ['a file of no known format: 69', () => { const f = path.join(tmp, 'text'); fs.writeFileSync(f, 'not a dump\n'.repeat(500)); return f; }, EX_UNAVAILABLE, ['unknown dump format', 'lkcd, diskdump, elf']],
    ['an ELF file that is not a core (the kernel image): 69', () => path.join(root, 'boot', `vmlinuz-${RELEASE}`), EX_UNAVAILABLE, ['not an x86_64 little-endian ELF64 core']],
    ['a broken LKCD header (dha_header_size fits no NR_CPUS): 65', () => {
      const b = Buffer.from(foreignLkcd({ version: 9, nrCpus: 8, compress: 'none', pages: ramPages('ordered').slice(0, 4) }).bytes);
      b.writeUInt32LE(1000, 742 + 12);
      const f = path.join(tmp, 'bad-asm.lkcd');
      fs.writeFileSync(f, b);
      return f;
    }, EX_DATAERR, ['dha_header_size 1000']],
    ['an RLE dump whose pages fit neither convention (some only N+1, some only N): 65', () => {
      const pages = ramPages('ordered').slice(0x200, 0x300);
      const kernel = foreignLkcd({ version: 9, nrCpus: 8, compress: 'rle-kernel', pages });
      const lib = foreignLkcd({ version: 9, nrCpus: 8, compress: 'rle-libkdumpfile', pages });
      const f = path.join(tmp, 'mixed-rle.lkcd');
      fs.writeFileSync(f, Buffer.concat([
        lib.bytes.subarray(0, lib.records[0x80].offset),
        ...kernel.records.slice(0x80).map((r) => kernel.bytes.subarray(r.offset, r.offset + 16 + r.size)),
        kernel.bytes.subarray(kernel.endOffset!, kernel.endOffset! + 16),
      ]));
      return f;
    }, EX_DATAERR, ['fit neither run-length convention', 'dh_dump_compress']],
    ['a missing file: 66', () => path.join(tmp, 'no-such-dump'), EX_NOINPUT, ['no such file']],
    ['a FIFO: 74, no hang', () => { const f = path.join(tmp, 'fifo'); spawnSync('mkfifo', [f]); return f; }, EX_IOERR, ['is a FIFO']],
  ];

  it.each(BAD)('%s', (_w, make, status, words) => {
    const file = make();
    const before = lastN();
    const beforeDirs = fs.readdirSync(dumpDirOf(root)).sort();
    const r: RunResult = run('lkcd', root, ['import', file]);
    cleanFailure(r, 'lkcd', status, ...words);
    expect(lastN()).toBe(before);
    expect(fs.readdirSync(dumpDirOf(root)).sort()).toEqual(beforeDirs);
  });

  it('a --map that is not a System.map: 65 naming its line; a --kerntypes that is neither ours nor ELF: 65', () => {
    const file = path.join(tmp, 'for-bad-map.lkcd');
    fs.writeFileSync(file, foreignLkcd({ version: 9, nrCpus: 8, compress: 'gzip', pages: ramPages('ordered').slice(0, 10) }).bytes);
    const badMap = path.join(tmp, 'bad.map');
    fs.writeFileSync(badMap, 'ffffffff81000000 T _text\nthis is not a symbol line\n');
    cleanFailure(run('lkcd', root, ['import', file, '--map', badMap]), 'lkcd', EX_DATAERR, 'System.map line 2');
    const badTypes = path.join(tmp, 'bad.kerntypes');
    fs.writeFileSync(badTypes, '{"format": "something-else"}');
    cleanFailure(run('lkcd', root, ['import', file, '--kerntypes', badTypes]), 'lkcd', EX_DATAERR, 'Kerntypes');
  });

  it.each([
    [1, 'with its files written, before the rename: the rerun imports it'],
    [2, 'after the rename, before indexing: the rerun finds it by sha256 and indexes it'],
    [3, 'after indexing, before bounds: the rerun says it is that dump (64) and brings bounds up'],
  ])('killed at kill point %i (%s): one dump, no leftover, no gap', (k, _what) => {
    const file = path.join(tmp, `kill-${k}.lkcd`);
    fs.writeFileSync(file, foreignLkcd({ version: 9, nrCpus: 8, compress: 'gzip', pages: ramPages('ordered').slice(k * 100, k * 100 + 200), release: RELEASE }).bytes);
    const n = lastN() + 1;
    const killed = run('lkcd', root, ['import', file], { LKCD_KILL_AT: String(k) });
    expect(killed.signal).toBe('SIGKILL');
    const again = run('lkcd', root, ['import', file]);
    if (k < 3) {
      ok(again);
      expect(again.stdout).toContain(`as dump ${n} `);
    } else {
      cleanFailure(again, 'lkcd', EX_USAGE, `is already dump ${n}`);
    }
    next = n + 1;
    expect(listJson(root).filter((d) => d.source === file).map((d) => d.n)).toEqual([n]);
    expect(fs.readFileSync(path.join(dumpDirOf(root), 'bounds'), 'utf8')).toBe(`${n + 1}\n`);
    expect(fs.readdirSync(dumpDirOf(root)).filter((f) => f.startsWith('.adding'))).toEqual([]);
    readsEqualRam(n, (pfn) => pfn >= k * 100 && pfn < k * 100 + 200);
  });

  it('an imported dump keeps its design through lkcd reindex; its directory holds origin.N, dump.N 0600 in a 0700 directory', () => {
    const before = listJson(root).map(({ saved_at: _s, ...rest }) => rest);
    // One imported dump is DAMAGED: reindex indexes it as such and exits 4.
    const r = run('lkcd', root, ['reindex']);
    cleanFailure(r, 'lkcd', DUMP_DAMAGED, 'indexed as DAMAGED');
    expect(r.stdout).toMatch(/^reindexed \d+ dumps in /m);
    expect(listJson(root).map(({ saved_at: _s, ...rest }) => rest)).toEqual(before);
    const dir = path.join(dumpDirOf(root), '0');
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    for (const f of ['dump.0', 'origin.0', 'map.0', 'analysis.0']) expect(fs.statSync(path.join(dir, f)).mode & 0o777, f).toBe(0o600);
    expect(fs.readFileSync(path.join(dir, 'origin.0'), 'utf8')).toMatch(/^design=import\nfile=dump\.0\nsource=\/.+\n$/);
  });
});
