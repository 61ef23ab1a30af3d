/**
 * LKCD dumps from a writer that is not ours (test/tools/foreign_lkcd.ts,
 * written from the format facts, sharing no code with src/): arch headers
 * for other NR_CPUS, v8 and v9, pages out of order with gaps, no END
 * record, RLE in the kernel's and in libkdumpfile's convention, a damaged
 * record. Every page our reader returns must be the page that was written.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DumpError, FaultError } from '../../../src/codec/index.js';
import { openDump, openLkcdFile, type LkcdDump } from '../../../src/dump/formats/index.js';
import { foreignLkcd, samplePages, PAGE, type ForeignCompress, type ForeignSpec } from '../../tools/foreign_lkcd.js';

let dir: string;
let serial = 0;
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-foreign-')); });
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(spec: ForeignSpec): { file: string; built: ReturnType<typeof foreignLkcd> } {
  const built = foreignLkcd(spec);
  const file = path.join(dir, `foreign.${serial++}`);
  fs.writeFileSync(file, built.bytes);
  return { file, built };
}

/** PFNs 0x100.. with gaps (every fifth left out, and a hole of 40 pages), then shuffled deterministically. */
function layout(kind: 'ordered' | 'shuffled-gaps'): number[] {
  const pfns = Array.from({ length: 36 }, (_, i) => 0x100 + i);
  if (kind === 'ordered') return pfns;
  const gapped = pfns.filter((p) => p % 5 !== 0).concat([0x180, 0x181, 0x1c3]);
  const out = [...gapped];
  for (let i = out.length - 1; i > 0; i--) {
    const j = (i * 7919) % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

const NR_CPUS = [1, 8, 32, 64, 128];
const COMPRESS: ForeignCompress[] = ['none', 'rle-kernel', 'rle-libkdumpfile', 'gzip'];
const MATRIX = NR_CPUS.flatMap((nrCpus) => ([8, 9] as const).flatMap((version) => COMPRESS.map((compress) => ({
  nrCpus, version, compress, order: (nrCpus + version) % 2 === 0 ? 'ordered' as const : 'shuffled-gaps' as const,
}))));

describe.each(MATRIX)('NR_CPUS $nrCpus, v$version, $compress, $order', ({ nrCpus, version, compress, order }) => {
  it('every page reads as written; the arch header and its per-CPU arrays are read at NR_CPUS\'s offsets', () => {
    const pages = samplePages(layout(order));
    const { file, built } = write({ version, nrCpus, compress, pages });
    const d = openDump(file, { mode: 'strict', verifyPages: true }) as LkcdDump;
    try {
      expect(d.attrs['file.description']).toBe(`Linux Kernel Crash Dump v${version}`);
      expect(d.nrCpus).toBe(nrCpus);
      const asm = d.asmHeader;
      expect(asm.dha_header_size).toBe(built.asmSize);
      expect([asm.dha_smp_regs.length, asm.dha_smp_current_task.length, asm.dha_stack.length, asm.dha_stack_ptr.length]).toEqual([nrCpus, nrCpus, nrCpus, nrCpus]);
      for (const i of [0, nrCpus >> 1, nrCpus - 1]) {
        const c = built.cpu(i);
        expect([asm.dha_smp_regs[i].ip, asm.dha_smp_regs[i].sp, asm.dha_smp_current_task[i], asm.dha_stack[i], asm.dha_stack_ptr[i]], `cpu ${i}`)
          .toEqual([c.rip, c.rsp, c.task, c.stack, c.stackPtr]);
      }
      expect(d.attrs['crash.regs'].ip).toBe(built.cpu(0).rip);
      expect(d.attrs['dump.data_offset']).toBe(BigInt(version === 8 ? 65536 : 256 * 1024));
      const integ = d.integrity();
      expect([integ.state, integ.checksum, integ.problems]).toEqual(['complete', 'unverified', []]);
      expect([...d.pages()]).toEqual(pages.map((p) => BigInt(p.pfn)));
      for (const p of pages) expect(Buffer.from(d.readPage(BigInt(p.pfn))).equals(Buffer.from(p.data)), `pfn ${p.pfn}`).toBe(true);
      expect(() => d.readPage(0x1000n)).toThrow(FaultError);
      if (compress.startsWith('rle')) {
        expect(d.attrs['dump.rle_convention']).toBe(compress === 'rle-kernel' ? 'kernel' : 'libkdumpfile');
        expect(d.rleConvention).toBe(d.attrs['dump.rle_convention']);
        expect(integ.notes.join('\n')).toMatch(compress === 'rle-kernel' ? /N\+1 copies, as the kernel writes it/ : /N copies, as libkdumpfile writes it/);
      } else {
        expect(d.attrs['dump.rle_convention']).toBeUndefined();
      }
      // Compressed and raw pages both occur, so each codec was exercised.
      if (compress !== 'none') expect(new Set(built.records.map((r) => r.flags))).toEqual(new Set([1, 2]));
    } finally {
      d.close();
    }
  });
});

describe('a dump cut short', () => {
  const pages = samplePages(layout('shuffled-gaps'));
  it.each([
    ['at a record boundary (no END record)', (b: ReturnType<typeof foreignLkcd>) => b.records[20].offset, 20],
    ['inside a record header', (b: ReturnType<typeof foreignLkcd>) => b.records[20].offset + 7, 20],
    ['inside a record\'s page data', (b: ReturnType<typeof foreignLkcd>) => b.records[20].offset + 16 + Math.floor(b.records[20].size / 2), 20],
  ])('%s: opens TRUNCATED with a note; the records before the cut read as written', (_w, cut, whole) => {
    const full = foreignLkcd({ version: 9, nrCpus: 8, compress: 'gzip', pages, end: false });
    const { file } = write({ version: 9, nrCpus: 8, compress: 'gzip', pages, end: false, cutAt: cut(full) });
    const d = openDump(file, { verifyPages: true });
    try {
      const integ = d.integrity();
      expect([integ.state, integ.problems.length]).toEqual(['truncated', 0]);
      expect(integ.notes[0]).toMatch(new RegExp(`^cut short: no END record, the file ends at offset 0x${cut(full).toString(16)}; ${whole} page records before it are whole`));
      expect(d.attrs['dump.truncated']).toBe(true);
      expect(d.attrs['dump.pages']).toBe(whole);
      for (const p of pages.slice(0, whole)) expect(Buffer.from(d.readPage(BigInt(p.pfn))).equals(Buffer.from(p.data))).toBe(true);
      for (const p of pages.slice(whole)) expect(() => d.readPage(BigInt(p.pfn))).toThrow(FaultError);
    } finally {
      d.close();
    }
  });
});

describe('a damaged record', () => {
  it('a record with unknown dp_flags is named and skipped; every other page reads (salvage), strict refuses naming it', () => {
    const pages = samplePages(layout('ordered'));
    const { file, built } = write({ version: 9, nrCpus: 64, compress: 'gzip', pages });
    const bad = built.records[11];
    const bytes = fs.readFileSync(file);
    bytes.writeUInt32LE(0x40, bad.offset + 12);
    fs.writeFileSync(file, bytes);
    const d = openDump(file, { mode: 'salvage', verifyPages: true });
    try {
      const integ = d.integrity();
      expect(integ.state).toBe('damaged');
      expect(integ.problems.map((p) => [p.pfn, p.offset, p.error.where.field])).toEqual([[BigInt(bad.pfn), BigInt(bad.offset), 'dp_flags']]);
      for (const p of pages) {
        if (p.pfn === bad.pfn) expect(() => d.readPage(BigInt(p.pfn))).toThrow(/damaged in the dump/);
        else expect(Buffer.from(d.readPage(BigInt(p.pfn))).equals(Buffer.from(p.data))).toBe(true);
      }
    } finally {
      d.close();
    }
    expect(() => openDump(file)).toThrow(expect.objectContaining({ code: 'CORRUPT', where: expect.objectContaining({ field: 'dp_flags' }) }));
  });

  it('a gzip page whose stream is broken is damaged, named by PFN, when pages are verified', () => {
    const pages = samplePages(layout('ordered'));
    const { file, built } = write({ version: 8, nrCpus: 1, compress: 'gzip', pages });
    const bad = built.records.find((r) => r.flags === 2 && r.size > 40)!;
    const bytes = fs.readFileSync(file);
    bytes[bad.offset + 16 + 20] ^= 0xff;
    fs.writeFileSync(file, bytes);
    const d = openDump(file, { mode: 'salvage', verifyPages: true });
    try {
      expect(d.integrity().problems.map((p) => p.pfn)).toEqual([BigInt(bad.pfn)]);
      expect(d.attrs['dump.pages']).toBe(pages.length - 1);
    } finally {
      d.close();
    }
  });
});

describe('RLE: the convention is chosen per dump, never page by page', () => {
  it('a libkdumpfile-convention dump with one page damaged so it decodes under neither: still libkdumpfile, that page named', () => {
    const pages = samplePages(layout('ordered'));
    const { file, built } = write({ version: 9, nrCpus: 8, compress: 'rle-libkdumpfile', pages });
    const bad = built.records.find((r) => r.flags === 2 && r.size > 30)!;
    const bytes = fs.readFileSync(file);
    // Append one literal's worth of length: the page now decodes one byte long under both conventions.
    bytes[bad.offset + 16 + bad.size - 1] = 0x01;
    bytes[bad.offset + 16 + bad.size - 2] = 0x01;
    fs.writeFileSync(file, bytes);
    const d = openDump(file, { mode: 'salvage', verifyPages: true });
    try {
      expect(d.attrs['dump.rle_convention']).toBe('libkdumpfile');
      expect(d.integrity().problems.map((p) => p.pfn)).toEqual([BigInt(bad.pfn)]);
      expect(d.integrity().problems[0].error.message).toMatch(/with N copies per run \(the dump's convention\)/);
    } finally {
      d.close();
    }
  });

  it('pages of both conventions in one dump: refused with one line naming dh_dump_compress (CORRUPT)', () => {
    const pages = samplePages(layout('ordered'));
    const kernel = foreignLkcd({ version: 9, nrCpus: 8, compress: 'rle-kernel', pages });
    const lib = foreignLkcd({ version: 9, nrCpus: 8, compress: 'rle-libkdumpfile', pages });
    // Records of the libkdumpfile file, then (same PFNs shifted) those of the kernel file: rebuilt from the two.
    const half = Math.floor(pages.length / 2);
    const mixed = Buffer.concat([
      lib.bytes.subarray(0, lib.records[half].offset),
      ...kernel.records.slice(half).map((r) => kernel.bytes.subarray(r.offset, r.offset + 16 + r.size)),
      kernel.bytes.subarray(kernel.endOffset!, kernel.endOffset! + 16),
    ]);
    const file = path.join(dir, 'mixed-rle');
    fs.writeFileSync(file, mixed);
    for (const mode of ['strict', 'salvage'] as const) {
      let err: unknown;
      try { openDump(file, { mode }).close(); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(DumpError);
      expect((err as DumpError).code).toBe('CORRUPT');
      expect((err as DumpError).where.field).toBe('dh_dump_compress');
      expect((err as DumpError).message).toMatch(/fit neither run-length convention/);
      expect((err as DumpError).message).not.toContain('\n');
    }
  });

  it('the index path reads with the convention it is given', () => {
    const pages = samplePages(layout('ordered'));
    const { file, built } = write({ version: 9, nrCpus: 8, compress: 'rle-libkdumpfile', pages });
    const byPfn = new Map(built.records.map((r) => [BigInt(r.pfn), { offset: BigInt(r.offset), size: r.size, flags: r.flags }]));
    const d = openLkcdFile(file, { index: (pfn) => byPfn.get(pfn) ?? null, rle: 'libkdumpfile' });
    try {
      for (const p of pages) expect(Buffer.from(d.readPage(BigInt(p.pfn))).equals(Buffer.from(p.data))).toBe(true);
    } finally {
      d.close();
    }
  });
});

describe('arch headers that fit no NR_CPUS', () => {
  it.each([[1727], [191], [192], [192 + 192 * 8193]])('dha_header_size %i: CORRUPT naming dha_header_size', (size) => {
    const { file, built } = write({ version: 9, nrCpus: 8, compress: 'none', pages: samplePages([1, 2]) });
    const bytes = fs.readFileSync(file);
    bytes.writeUInt32LE(size, 742 + 12);
    fs.writeFileSync(file, bytes);
    let err: unknown;
    try { openDump(file).close(); } catch (e) { err = e; }
    expect((err as DumpError).code).toBe('CORRUPT');
    expect((err as DumpError).where).toMatchObject({ struct: 'dump_header_asm', field: 'dha_header_size', offset: 742n + 12n });
    expect(built.asmSize).toBe(1728);
  });

  it('an arch header that runs past dh_dump_buffer_size: CORRUPT naming dh_dump_buffer_size', () => {
    const { file } = write({ version: 9, nrCpus: 128, compress: 'none', pages: samplePages([1]), bufferSize: 8192 * 4 });
    const bytes = fs.readFileSync(file);
    bytes.writeUInt32LE(192 + 192 * 256, 742 + 12);
    fs.writeFileSync(file, bytes);
    expect(() => openDump(file)).toThrow(expect.objectContaining({ code: 'CORRUPT', where: expect.objectContaining({ field: 'dh_dump_buffer_size' }) }));
  });
});

it('PAGE is the x86_64 page size', () => expect(PAGE).toBe(4096));
