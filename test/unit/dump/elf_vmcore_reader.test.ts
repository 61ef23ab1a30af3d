/**
 * The ELF vmcore reader on cores written here from the ELF64 facts (not by
 * our writer): the first PT_LOAD in program-header order wins where loads
 * overlap, however the pages are read; pages wholly past p_filesz are not in
 * the dump; a file cut short keeps its whole pages and says TRUNCATED.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultError } from '../../../src/codec/index.js';
import { openDump, type ProbedDump } from '../../../src/dump/formats/index.js';

const PAGE = 4096;
const EHDR = 64;
const PHDR = 56;

interface L { paddr: number; fill: number; pages: number; memPages?: number }

/** An ELF64 LE x86_64 ET_CORE with one PT_LOAD per `loads` (each page filled with `fill + page index`). */
function core(loads: L[]): Buffer {
  const dataAt = Math.ceil((EHDR + PHDR * loads.length) / PAGE) * PAGE;
  const h = Buffer.alloc(dataAt);
  h.write('\x7fELF', 0, 'latin1');
  h[4] = 2; h[5] = 1; h[6] = 1; // ELFCLASS64, ELFDATA2LSB, EV_CURRENT
  h.writeUInt16LE(4, 16); // ET_CORE
  h.writeUInt16LE(62, 18); // EM_X86_64
  h.writeUInt32LE(1, 20);
  h.writeBigUInt64LE(BigInt(EHDR), 32); // e_phoff
  h.writeUInt16LE(EHDR, 52);
  h.writeUInt16LE(PHDR, 54);
  h.writeUInt16LE(loads.length, 56);
  const data: Buffer[] = [];
  let off = dataAt;
  loads.forEach((l, i) => {
    const p = EHDR + i * PHDR;
    h.writeUInt32LE(1, p); // PT_LOAD
    h.writeUInt32LE(7, p + 4);
    h.writeBigUInt64LE(BigInt(off), p + 8);
    h.writeBigUInt64LE(0xffff888000000000n + BigInt(l.paddr), p + 16);
    h.writeBigUInt64LE(BigInt(l.paddr), p + 24);
    h.writeBigUInt64LE(BigInt(l.pages * PAGE), p + 32);
    h.writeBigUInt64LE(BigInt((l.memPages ?? l.pages) * PAGE), p + 40);
    for (let k = 0; k < l.pages; k++) data.push(Buffer.alloc(PAGE, (l.fill + k) & 0xff));
    off += l.pages * PAGE;
  });
  return Buffer.concat([h, ...data]);
}

let dir: string;
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'elf-reader-')); });
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function open(bytes: Buffer, name: string): ProbedDump {
  const f = path.join(dir, name);
  fs.writeFileSync(f, bytes);
  return openDump(f, { mode: 'salvage', verifyPages: true });
}

const byte = (d: ProbedDump, pfn: number): number => d.readPage(BigInt(pfn))[0];

describe('ELF vmcore reader', () => {
  it('overlapping loads: the first in program-header order wins, read in order or at random', () => {
    // Load 0 covers pfns 0x10..0x13 (fill 0xa0..), load 1 pfns 0x00..0x1f (fill 0x10..), load 2 pfns 0x20..0x27 alone.
    const d = open(core([{ paddr: 0x10 * PAGE, fill: 0xa0, pages: 4 }, { paddr: 0, fill: 0x10, pages: 0x20 }, { paddr: 0x20 * PAGE, fill: 0x50, pages: 8 }]), 'overlap');
    try {
      const want = (pfn: number): number => (pfn >= 0x10 && pfn < 0x14 ? 0xa0 + pfn - 0x10 : pfn < 0x20 ? 0x10 + pfn : 0x50 + pfn - 0x20);
      for (let pfn = 0; pfn < 0x28; pfn++) expect(byte(d, pfn), `pfn ${pfn}`).toBe(want(pfn));
      for (const pfn of [0x21, 0x12, 0x25, 0x0f, 0x13, 0x14, 0x26]) expect(byte(d, pfn), `pfn ${pfn} again`).toBe(want(pfn));
      expect([...d.pages()].length).toBe(0x28);
      expect(d.integrity()).toMatchObject({ state: 'complete', checksum: 'unverified', problems: [] });
    } finally {
      d.close();
    }
  });

  it('a page wholly past p_filesz is not in the dump, however long p_memsz is', () => {
    const d = open(core([{ paddr: 0, fill: 1, pages: 3, memPages: 10 }, { paddr: 10 * PAGE, fill: 0x40, pages: 2 }]), 'tail');
    try {
      expect([...d.pages()]).toEqual([0n, 1n, 2n, 10n, 11n]);
      expect(() => d.readPage(5n)).toThrow(FaultError);
      expect(d.attrs['dump.memory_pages']).toBe(12n);
      expect(byte(d, 11)).toBe(0x41);
    } finally {
      d.close();
    }
  });

  it('cut short inside a load: TRUNCATED with a note, the whole pages it still holds read, the rest are not in the dump', () => {
    const full = core([{ paddr: 0, fill: 1, pages: 8 }, { paddr: 16 * PAGE, fill: 0x30, pages: 4 }]);
    // The data starts at the second page of the file: cut 100 bytes before the end of load 0's third page.
    const d = open(full.subarray(0, 4 * PAGE - 100), 'cut');
    try {
      const integ = d.integrity();
      expect(integ.state).toBe('truncated');
      expect(integ.notes.join('\n')).toMatch(/cut short: PT_LOAD 0 \(paddr 0x0\) needs .*its last 6 pages are not in the dump/);
      expect(integ.notes.join('\n')).toMatch(/cut short: PT_LOAD 1 \(paddr 0x10000\) .*its last 4 pages are not in the dump/);
      expect(d.attrs['dump.truncated']).toBe(true);
      expect([...d.pages()]).toEqual([0n, 1n]);
      expect(byte(d, 1)).toBe(2);
      expect(() => d.readPage(2n)).toThrow(FaultError);
      expect(() => d.readPage(16n)).toThrow(FaultError);
    } finally {
      d.close();
    }
  });
});
