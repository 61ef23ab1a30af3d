/**
 * The kdump-compressed reader as the format table opens it to verify
 * (lkcd import, lkcd verify): every page decoded, a bad one named by PFN
 * and read as not present, the rest readable; strict mode refuses; a file
 * makedumpfile marked unfinished is TRUNCATED. Files from the test's own
 * writer (test/tools/mkkdump.ts, written from the format facts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultError } from '../../../src/codec/index.js';
import { openDump } from '../../../src/dump/formats/index.js';
import { writeKdump, type MkPage } from '../../tools/mkkdump.js';

const PAGE = 4096;
const ZLIB = 0x1;
const INCOMPLETE = 0x8;

let dir: string;
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kdumpc-verify-')); });
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const pageOf = (pfn: number): Buffer => Buffer.alloc(PAGE, `page ${pfn} `);

function write(name: string, status: number, broken: number | null): string {
  const pages: MkPage[] = [3, 4, 5, 9, 12].map((pfn) => {
    const c = zlib.deflateSync(pageOf(pfn));
    if (pfn === broken) c[c.length >> 1] ^= 0xff;
    return { pfn, data: c, flags: ZLIB };
  });
  const file = path.join(dir, name);
  writeKdump(file, { release: '5.4.0-test', nodename: 'n', maxMapnr: 16, status: status | ZLIB, dumpLevel: 31, notes: new Uint8Array(0), pages });
  return file;
}

describe('kdump-compressed, opened to verify', () => {
  it('a page whose zlib stream is broken: damaged, named by PFN, not present; the others read; strict mode refuses', () => {
    const file = write('broken', 0, 5);
    const d = openDump(file, { mode: 'salvage', verifyPages: true });
    try {
      const integ = d.integrity();
      expect([integ.state, integ.checksum]).toEqual(['damaged', 'unverified']);
      expect(integ.problems.map((p) => p.pfn)).toEqual([5n]);
      expect([...d.pages()]).toEqual([3n, 4n, 9n, 12n]);
      expect(() => d.readPage(5n)).toThrow(FaultError);
      for (const pfn of [3, 4, 9, 12]) expect(Buffer.from(d.readPage(BigInt(pfn))).equals(pageOf(pfn))).toBe(true);
      expect(d.compressed!(3n)).toBe(true);
    } finally {
      d.close();
    }
    expect(() => openDump(file, { verifyPages: true })).toThrow(/does not decompress/);
  });

  it('DUMP_DH_COMPRESSED_INCOMPLETE: TRUNCATED, with a note; a sound file: complete, unverified', () => {
    const d = openDump(write('incomplete', INCOMPLETE, null), { mode: 'salvage', verifyPages: true });
    try {
      expect(d.integrity().state).toBe('truncated');
      expect(d.integrity().notes).toContain('makedumpfile did not finish the file (DUMP_DH_COMPRESSED_INCOMPLETE in status)');
      expect(d.attrs['dump.truncated']).toBe(true);
    } finally {
      d.close();
    }
    const ok = openDump(write('sound', 0, null), { verifyPages: true });
    try {
      expect(ok.integrity()).toMatchObject({ state: 'complete', checksum: 'unverified', problems: [] });
    } finally {
      ok.close();
    }
  });
});
