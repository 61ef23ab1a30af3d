/**
 * The corruption sweep (issue 8): one byte flipped at offsets spread over
 * the dump header, the arch header, record headers and page data (raw and
 * compressed pages) of a real dump, on the dump device before `lkcd save`
 * and in dump.N before `lkcd verify` and `lkcd reindex`. Every flip must be
 * detected: the dump saved or indexed as DAMAGED with exactly the flipped
 * record's page named (the other pages equal to RAM before the panic), or
 * refused with one error, never saved or indexed as good. `lkcd reindex`
 * keeps the good dump beside the damaged one. Where each record lies is
 * decoded here from the format's facts (helpers' recordOffsets), the
 * truth is RAM just before the panic.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DumpError } from '../../src/codec/index.js';
import { MachineRoot, PAGE_SIZE, PAGE_SIZE_N } from '../../src/machine/index.js';
import {
  DUMP_COMPRESS_GZIP, DUMP_DH_COMPRESSED, DUMP_DH_RAW, DUMP_HEADER_OFFSET, DUMP_LEVEL_ALL_RAM, dump_header, dump_header_asm, dump_page,
} from '../../src/dump/index.js';
import { DumpIndex } from '../../src/store/index.js';
import { lkcdConfig } from '../../lkcd/config.js';
import { lkcdSave, reindexDumpDir } from '../../lkcd/save.js';
import { openIndexedDump } from '../../lkcd/query.js';
import { verifySavedDump } from '../../lkcd/verify.js';
import { hashOf, pageHash } from '../helpers/ramdiff.js';
import { hexs, type Snapshot } from '../helpers/softboot.js';
import {
  cleanFailure, copyRoot, deviceOf, dumpDirOf, dumpDirState, ensureBuilt, panicWithTruth, powerOnScenario, recordOffsets, run,
  INDEX_FILE_NAME, type Scenario,
} from '../helpers/lkcd.js';

const MiB = 1n << 20n;
// 32M: on 16M the crash recovery kernel's device dumps (4 MiB of cxgb4's) leave its workload no anonymous pages.
const SCENARIO: Scenario = { mem: 32n * MiB, profile: 'database', seed: 88, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_GZIP };
/** Exit status of a DAMAGED dump (src/cli/exit.ts). */
const DUMP_DAMAGED = 4;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-sweep-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Dump 0 saved; a second crash written out to the device, not yet saved. */
const deviceReady = path.join(tmp, 'device-ready');
/** The same with the second dump saved as dump 1. */
const twoSaved = path.join(tmp, 'two-saved');
const work = path.join(tmp, 'work');
let snaps: Snapshot[] = [];

beforeAll(() => {
  ensureBuilt();
  powerOnScenario(deviceReady, SCENARIO);
  const root = new MachineRoot(deviceReady);
  lkcdConfig(root);
  for (const msg of ['sweep: first crash', 'sweep: second crash']) {
    const { truth, out } = panicWithTruth(deviceReady, msg);
    expect(out.after).toBe('kexec');
    snaps.push(truth.snap);
    expect(lkcdConfig(root).degraded).toBeUndefined();
    if (snaps.length === 1) expect(lkcdSave(root).degraded).toBeUndefined();
  }
  copyRoot(deviceReady, twoSaved);
  const saved = lkcdSave(new MachineRoot(twoSaved));
  expect([saved.n, saved.degraded]).toEqual([1, undefined]);
});

type FlipClass = 'dump_header' | 'arch header' | 'raw record header' | 'compressed record header' | 'raw page data' | 'compressed page data';

interface Flip {
  cls: FlipClass;
  /** Offset from byte 0 of the dump (DUMP_HEADER_OFFSET on the device). */
  at: number;
  what: string;
  /** The page a record or data flip damages. */
  pfn: bigint | null;
}

/** Offsets spread over the headers (every field of dump_header, some of the arch header), two raw and two compressed records. */
function flips(dump: Buffer): Flip[] {
  const out: Flip[] = [];
  for (const f of dump_header.fields) out.push({ cls: 'dump_header', at: f.offset + Math.floor(f.size / 2), what: `dump_header.${f.name}`, pfn: null });
  for (const f of dump_header_asm.fields.filter((x) => ['dha_magic_number', 'dha_version', 'dha_header_size', 'dha_regs', 'dha_smp_regs', 'dha_stack_ptr'].includes(x.name))) {
    out.push({ cls: 'arch header', at: dump_header.size + f.offset + Math.min(9, f.size - 1), what: `dump_header_asm.${f.name}`, pfn: null });
  }
  const dataOffset = dump.readBigUInt64LE(dump_header.offsetOf.dh_dump_buffer_size);
  const records = recordOffsets(dump, dataOffset);
  for (const flags of [DUMP_DH_RAW, DUMP_DH_COMPRESSED]) {
    const kind = flags === DUMP_DH_RAW ? 'raw' : 'compressed';
    const of = records.filter((r) => r.flags === flags);
    expect(of.length, `${kind} records`).toBeGreaterThan(10);
    for (const r of [of[3], of[Math.floor(of.length * 0.7)]]) {
      for (const [field, byte] of [['dp_address', 1], ['dp_size', 0], ['dp_flags', 0]] as const) {
        out.push({ cls: `${kind} record header`, at: r.offset + dump_page.offsetOf[field] + byte, what: `${field} of pfn ${hexs(r.pfn)}`, pfn: r.pfn });
      }
      for (const d of [0, Math.floor(r.size / 2), r.size - 1]) {
        out.push({ cls: `${kind} page data`, at: r.offset + dump_page.size + d, what: `data byte ${d} of pfn ${hexs(r.pfn)}`, pfn: r.pfn });
      }
    }
  }
  return out;
}

function flipByte(file: string, at: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, at);
    b[0] ^= 0x20;
    fs.writeSync(fd, b, 0, 1, at);
  } finally {
    fs.closeSync(fd);
  }
}

/** Pages of indexed dump n that differ from RAM before its panic (every page the index holds). */
function wrongPages(root: string, n: number, snap: Snapshot): string[] {
  const o = openIndexedDump(dumpDirOf(root), n);
  try {
    const wrong: string[] = [];
    for (const pfn of o.dump.pages()) if (!pageHash(o.dump.readPage(pfn)).equals(hashOf(snap.hashes, pfn))) wrong.push(hexs(pfn));
    return wrong;
  } finally {
    o.close();
  }
}

function damagedRanges(root: string, n: number): bigint[] {
  const index = DumpIndex.open(dumpDirOf(root), { readonly: true });
  try {
    const out: bigint[] = [];
    for (const m of index.missing(n)) if (m.reason === 'damaged') for (let p = m.start_pfn; p < m.end_pfn; p++) out.push(p);
    return out;
  } finally {
    index.close();
  }
}

interface Tally { flips: number; damagedPage: number; damagedHeader: number; refused: number }
const tally = (): Record<FlipClass, Tally> => Object.fromEntries(
  (['dump_header', 'arch header', 'raw record header', 'compressed record header', 'raw page data', 'compressed page data'] as const)
    .map((c) => [c, { flips: 0, damagedPage: 0, damagedHeader: 0, refused: 0 }])) as Record<FlipClass, Tally>;
const report = (name: string, t: Record<FlipClass, Tally>): string =>
  `${name}: ${Object.values(t).reduce((n, x) => n + x.flips, 0)} flips; ${Object.entries(t).map(([c, x]) => `${c} ${x.flips} (page named ${x.damagedPage}, header damaged ${x.damagedHeader}, refused ${x.refused})`).join('; ')}`;

describe('byte flips on the dump device, before lkcd save', () => {
  const t = tally();
  const problems: string[] = [];

  beforeAll(() => {
    const device = fs.readFileSync(deviceOf(deviceReady));
    const dumpBytes = device.subarray(Number(DUMP_HEADER_OFFSET));
    for (const f of flips(dumpBytes)) {
      copyRoot(deviceReady, work);
      const before = dumpDirState(work);
      flipByte(deviceOf(work), Number(DUMP_HEADER_OFFSET) + f.at);
      t[f.cls].flips++;
      let saved: ReturnType<typeof lkcdSave>;
      try {
        saved = lkcdSave(new MachineRoot(work));
      } catch (e) {
        if (!(e instanceof DumpError) || e.code === 'INTERNAL') throw e;
        const after = dumpDirState(work);
        if (JSON.stringify({ ...after, deviceSha256: null }) !== JSON.stringify({ ...before, deviceSha256: null })) problems.push(`${f.what}: refused (${e.message}) but DUMPDIR changed`);
        else t[f.cls].refused++;
        continue;
      }
      if (saved.n !== 1 || saved.degraded?.code !== 'DUMP_DAMAGED') {
        problems.push(`${f.what}: saved as ${saved.n} with ${saved.degraded?.code ?? 'no degraded result'}: ${saved.lines.join(' | ')}`);
        continue;
      }
      const damaged = damagedRanges(work, 1);
      const wrong = wrongPages(work, 1, snaps[1]);
      if (wrong.length) problems.push(`${f.what}: pages read wrong after the save: ${wrong.slice(0, 4).join(', ')}`);
      else if (f.pfn !== null && damaged.length === 1 && damaged[0] === f.pfn) t[f.cls].damagedPage++;
      else if (f.pfn === null && damaged.length === 0) t[f.cls].damagedHeader++;
      else problems.push(`${f.what}: damaged pages named ${damaged.map(hexs).join(', ') || 'none'}`);
    }
  });

  it('every flip is detected: saved as DAMAGED with exactly that page named (every other page as it was in RAM), or refused and nothing saved', () => {
    expect(problems).toEqual([]);
    for (const [cls, x] of Object.entries(t)) {
      expect(x.damagedPage + x.damagedHeader + x.refused, cls).toBe(x.flips);
      if (cls.includes('record') || cls.includes('data')) expect(x.damagedPage, cls).toBe(x.flips);
    }
    console.log(report('flip sweep (device, lkcd save)', t));
  });

  it('the CLI exits 4 with one line naming the damaged page, after the save\'s lines', () => {
    const dumpBytes = fs.readFileSync(deviceOf(deviceReady)).subarray(Number(DUMP_HEADER_OFFSET));
    const f = flips(dumpBytes).find((x) => x.cls === 'compressed page data')!;
    copyRoot(deviceReady, work);
    flipByte(deviceOf(work), Number(DUMP_HEADER_OFFSET) + f.at);
    const r = run('lkcd', work, ['save']);
    cleanFailure(r, 'lkcd', DUMP_DAMAGED, 'dump 1 is DAMAGED', `first PFN ${hexs(f.pfn!)}`);
    expect(r.stdout).toMatch(/^lkcd save: saved dump 1 to .*, DAMAGED \(1 pages damaged\); panic "sweep: second crash"\n/);
    expect(r.stdout).toContain(`paddr ${hexs(f.pfn! * PAGE_SIZE_N)}`);
  });
});

describe('byte flips in dump.N, before lkcd verify and lkcd reindex', () => {
  const verifyTally = tally();
  const reindexTally = tally();
  const problems: string[] = [];

  beforeAll(() => {
    copyRoot(twoSaved, work);
    const dumpdir = dumpDirOf(work);
    const file = path.join(dumpdir, '0', 'dump.0');
    const indexFile = path.join(dumpdir, INDEX_FILE_NAME);
    const pristineIndex = fs.readFileSync(indexFile);
    for (const f of flips(fs.readFileSync(file))) {
      flipByte(file, f.at);
      // lkcd verify
      verifyTally[f.cls].flips++;
      try {
        const v = verifySavedDump(dumpdir, 0);
        if (v.degraded?.code !== 'DUMP_DAMAGED') problems.push(`verify, ${f.what}: ${v.line}`);
        else if (f.pfn !== null && v.damaged.length === 1 && v.damaged[0] === f.pfn && v.degraded.message.includes(`paddr ${hexs(f.pfn * PAGE_SIZE_N)}`)) verifyTally[f.cls].damagedPage++;
        else if (f.pfn === null && v.damaged.length === 0) verifyTally[f.cls].damagedHeader++;
        else problems.push(`verify, ${f.what}: named ${v.damaged.map(hexs).join(', ')}: ${v.degraded.message}`);
      } catch (e) {
        if (!(e instanceof DumpError) || e.code === 'INTERNAL') throw e;
        verifyTally[f.cls].refused++;
      }
      // lkcd reindex
      reindexTally[f.cls].flips++;
      const r = reindexDumpDir(dumpdir, () => undefined);
      const good = r.indexed.find((d) => d.n === 1);
      if (!good || good.state !== 'complete' || good.checksum !== 'verified') problems.push(`reindex, ${f.what}: the good dump 1 is ${good ? good.state : 'gone'}`);
      const bad = r.indexed.find((d) => d.n === 0);
      if (!bad) {
        if (r.skipped.map((s) => s.n).join() === '0') reindexTally[f.cls].refused++;
        else problems.push(`reindex, ${f.what}: dump 0 neither indexed nor skipped`);
      } else if (bad.state !== 'damaged') {
        problems.push(`reindex, ${f.what}: dump 0 indexed as ${bad.state}`);
      } else {
        const damaged = damagedRanges(work, 0);
        const wrong = wrongPages(work, 0, snaps[0]);
        if (wrong.length) problems.push(`reindex, ${f.what}: pages read wrong: ${wrong.slice(0, 4).join(', ')}`);
        else if (f.pfn !== null && damaged.length === 1 && damaged[0] === f.pfn) reindexTally[f.cls].damagedPage++;
        else if (f.pfn === null && damaged.length === 0) reindexTally[f.cls].damagedHeader++;
        else problems.push(`reindex, ${f.what}: damaged pages named ${damaged.map(hexs).join(', ') || 'none'}`);
      }
      // Back to the saved dump and its index.
      flipByte(file, f.at);
      for (const x of [`${INDEX_FILE_NAME}-wal`, `${INDEX_FILE_NAME}-shm`]) fs.rmSync(path.join(dumpdir, x), { force: true });
      fs.writeFileSync(indexFile, pristineIndex, { mode: 0o600 });
    }
  });

  it('lkcd verify detects every flip: DAMAGED naming exactly that page, or a header that fails, or refused', () => {
    expect(problems.filter((p) => p.startsWith('verify'))).toEqual([]);
    for (const [cls, x] of Object.entries(verifyTally)) {
      expect(x.damagedPage + x.damagedHeader + x.refused, cls).toBe(x.flips);
      if (cls.includes('record') || cls.includes('data')) expect(x.damagedPage, cls).toBe(x.flips);
    }
    console.log(report('flip sweep (dump.N, lkcd verify)', verifyTally));
  });

  it('lkcd reindex keeps the good dump every time and indexes the flipped one as DAMAGED (its page named, the rest readable) or skips it', () => {
    expect(problems.filter((p) => p.startsWith('reindex'))).toEqual([]);
    for (const [cls, x] of Object.entries(reindexTally)) {
      expect(x.damagedPage + x.damagedHeader + x.refused, cls).toBe(x.flips);
      if (cls.includes('record') || cls.includes('data')) expect(x.damagedPage, cls).toBe(x.flips);
    }
    console.log(report('flip sweep (dump.N, lkcd reindex)', reindexTally));
  });

  it('the CLI: verify exits 4 naming the page; reindex prints both dumps, the damaged one named, and exits 4', () => {
    const dumpdir = dumpDirOf(work);
    const file = path.join(dumpdir, '0', 'dump.0');
    const f = flips(fs.readFileSync(file)).find((x) => x.cls === 'raw page data')!;
    flipByte(file, f.at);
    const v = run('lkcd', work, ['verify', '0']);
    cleanFailure(v, 'lkcd', DUMP_DAMAGED, `paddr ${hexs(f.pfn! * PAGE_SIZE_N)}`);
    expect(v.stdout).toMatch(/^dump 0: \d+ pages verified .*; DAMAGED: 1 page fail their checks \(paddr 0x[0-9a-f]+\)\n$/);
    const r = run('lkcd', work, ['reindex']);
    cleanFailure(r, 'lkcd', DUMP_DAMAGED, '1 dump indexed as DAMAGED', 'dump 0 is DAMAGED');
    expect(r.stdout).toBe(`lkcd reindex: dump 0: DAMAGED (1 pages damaged)\nreindexed 2 dumps in ${dumpdir}\n`);
    expect(fs.readdirSync(dumpdir).filter((x) => x.startsWith(`${INDEX_FILE_NAME}.new`))).toEqual([]);
    const list = JSON.parse(run('lkcd', work, ['list', '--json']).stdout) as Array<{ n: number; state: string; damaged_pages: number }>;
    expect(list.map((d) => [d.n, d.state, d.damaged_pages])).toEqual([[0, 'damaged', 1], [1, 'complete', 0]]);
    expect(PAGE_SIZE).toBe(4096);
  });
});
