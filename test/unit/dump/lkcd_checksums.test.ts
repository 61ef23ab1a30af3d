/**
 * The checksum extension and the one record walker, on dumps mklkcd builds
 * from a spec: the extension's layout decoded here from its facts (not by
 * the reader), a byte flip at every offset of a spread over the headers,
 * the record headers, the page data (raw and compressed), the END record,
 * the extension area and its locator, each detected (damaged with exactly
 * the flipped record's page named, or refused with a DumpError), the old
 * LKCDMISS layout still read, an unknown extension a note, and a dump with
 * no checksums opened as unverified.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DumpError, FaultError } from '../../../src/codec/index.js';
import {
  LkcdDump, bytesSource, openDump, verifyLkcd, type ProbedDump,
} from '../../../src/dump/formats/index.js';
import { dump_header } from '../../../src/dump/lkcd/dump_header.js';
import { dump_header_asm } from '../../../src/dump/lkcd/dump_header_asm.js';
import { writeLkcd, type MklkcdResult } from '../../tools/mklkcd.js';

let dir: string;
let serial = 0;
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-csum-')); });
afterAll(() => { fs.rmSync(dir, { recursive: true, force: true }); });

function make(spec: string): { file: string; built: MklkcdResult } {
  const file = path.join(dir, `dump.${serial++}`);
  return { file, built: writeLkcd(spec, file) };
}

/** Six pages, raw and gzip-compressed, the END record flagged TRUNCATED, ranges with reasons, the extension with its locator. */
const SPEC = [
  'compress gzip',
  'memory_size 0x40',
  'panic "checksum test"',
  '@0x1000 auto random:1',
  '@0x2000 auto 41*4096',
  '@0x3000 auto random:3',
  '@0x5000 auto 00*2048 11*2048',
  '@0x9000 auto zero',
  '@0x20000 auto random:7',
  'end truncated',
  'checksums 0x4-0x5:did-not-fit 0x30-0x38:dumper 0x38-0x3a:device',
  'bytes 6d*200',
].join('\n');

// ---- the layout, decoded from the format's facts ----------------------------------------------

/** The extension area as the README describes it, decoded with plain DataView reads. */
function decodeArea(bytes: Uint8Array, at: number): Array<{ magic: string; count: number; crc: number; body: Uint8Array }> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Array<{ magic: string; count: number; crc: number; body: Uint8Array }> = [];
  for (let pos = at; ;) {
    const magic = Buffer.from(bytes.subarray(pos, pos + 8)).toString('latin1');
    const count = view.getUint32(pos + 8, true);
    const crc = view.getUint32(pos + 12, true);
    const len = magic === 'LKCDRNGS' ? 24 * count : magic === 'LKCDCSUM' ? 24 + 12 * count : 0;
    out.push({ magic, count, crc, body: bytes.subarray(pos + 16, pos + 16 + len) });
    pos += 16 + len;
    if (magic === 'LKCDXEND' || out.length > 8) return out;
  }
}

describe('the extension area as written', () => {
  let built: MklkcdResult;
  beforeAll(() => { ({ built } = make(SPEC)); });

  it('follows the END record: LKCDRNGS, LKCDCSUM, LKCDXEND, each block with a CRC32 of its body', () => {
    const at = Number(built.endOffset!) + 16;
    expect(built.extOffset).toBe(BigInt(at));
    const blocks = decodeArea(built.bytes, at);
    expect(blocks.map((b) => [b.magic, b.count])).toEqual([['LKCDRNGS', 3], ['LKCDCSUM', 6], ['LKCDXEND', 2]]);
    for (const b of blocks.slice(0, 2)) expect(zlib.crc32(b.body) >>> 0).toBe(b.crc);
    const ranges = new DataView(blocks[0].body.buffer, blocks[0].body.byteOffset, blocks[0].body.byteLength);
    expect([0, 1, 2].map((i) => [ranges.getBigUint64(24 * i, true), ranges.getBigUint64(24 * i + 8, true), ranges.getUint32(24 * i + 16, true)]))
      .toEqual([[4n, 5n, 1], [0x30n, 0x38n, 5], [0x38n, 0x3an, 4]]);
  });

  it('LKCDCSUM holds the header CRC32, the END record\'s, and per record its pfn, size, flags and the CRC32 of header and data', () => {
    const blocks = decodeArea(built.bytes, Number(built.extOffset!));
    const body = blocks[1].body;
    const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
    const headerLen = dump_header.size + dump_header_asm.size;
    expect(v.getBigUint64(0, true)).toBe(BigInt(built.dataOffset));
    expect(v.getUint32(8, true)).toBe(headerLen);
    expect(v.getUint32(12, true)).toBe(zlib.crc32(built.bytes.subarray(0, headerLen)) >>> 0);
    const end = Number(built.endOffset!);
    expect(v.getUint32(16, true)).toBe(zlib.crc32(built.bytes.subarray(end, end + 16)) >>> 0);
    expect(v.getUint32(20, true)).toBe(1); // the locator was written
    const pages = built.records.filter((r) => r.kind === 'page');
    pages.forEach((r, i) => {
      const at = 24 + 12 * i;
      const o = Number(r.offset);
      expect([v.getUint32(at, true), v.getUint16(at + 4, true), v.getUint16(at + 6, true)]).toEqual([Number(r.pfn), r.dpSize, r.dpFlags]);
      expect(v.getUint32(at + 8, true)).toBe(zlib.crc32(built.bytes.subarray(o, o + 16 + r.dpSize)) >>> 0);
    });
  });

  it('the locator at 8192 names the area, its length and its CRC32, and carries a CRC32 of itself', () => {
    const v = new DataView(built.bytes.buffer, built.bytes.byteOffset, built.bytes.byteLength);
    expect(Buffer.from(built.bytes.subarray(8192, 8200)).toString('latin1')).toBe('LKCDXLOC');
    const at = Number(v.getBigUint64(8200, true));
    const len = Number(v.getBigUint64(8208, true));
    expect(at).toBe(Number(built.extOffset));
    expect(Buffer.from(built.bytes.subarray(at + len - 16, at + len - 8)).toString('latin1')).toBe('LKCDXEND');
    expect(v.getUint32(8216, true)).toBe(zlib.crc32(built.bytes.subarray(at, at + len)) >>> 0);
    expect(v.getUint32(8220, true)).toBe(zlib.crc32(built.bytes.subarray(8192, 8220)) >>> 0);
  });
});

describe('reading a checksummed dump', () => {
  it('opens verified; every page reads as written; listed ranges keep their reasons; the dumper\'s are not missing', () => {
    const { file, built } = make(SPEC);
    const d = openDump(file) as LkcdDump;
    try {
      const integ = d.integrity();
      expect(integ.checksum).toBe('verified');
      expect(integ.problems).toEqual([]);
      expect(integ.state).toBe('truncated');
      expect(integ.ranges.map((r) => [r.start, r.end, r.reason])).toEqual([[4n, 5n, 'did-not-fit'], [0x30n, 0x38n, 'dumper'], [0x38n, 0x3an, 'device']]);
      expect(d.missingRanges()).toEqual([[4n, 5n], [0x38n, 0x3an]]);
      for (const [pfn, bytes] of built.pages) expect(Buffer.from(d.readPage(pfn)).equals(Buffer.from(bytes))).toBe(true);
      expect(d.extent).toBe(built.extOffset! + BigInt(16 + 3 * 24 + 16 + 24 + 6 * 12 + 16));
    } finally {
      d.close();
    }
    const v = verifyLkcd(file);
    expect([v.state, v.checksum, v.bad.length, v.pages]).toEqual(['truncated', 'verified', 0, 6]);
  });

  it('without the locator the area is found after END, and the same checks apply', () => {
    const { file } = make(SPEC.replace('checksums', 'checksums nolocator'));
    const v = verifyLkcd(file);
    expect([v.state, v.checksum, v.bad]).toEqual(['truncated', 'verified', []]);
  });

  it('a dump with no checksums (another tool\'s) opens unverified; its old LKCDMISS trailer is read, reason unspecified', () => {
    const { file } = make('@0x1000 raw 11*4096\n@0x2000 raw 22*4096\nend truncated\ntrailer 3-5\nbytes 6d*100');
    const d = openDump(file);
    try {
      const integ = d.integrity();
      expect([integ.state, integ.checksum, integ.problems]).toEqual(['truncated', 'unverified', []]);
      expect(integ.ranges).toEqual([{ start: 3n, end: 5n, reason: 'unspecified' }]);
    } finally {
      d.close();
    }
  });

  it('an extension block this reader does not know ends parsing with a note, not a failure', () => {
    const { file } = make('@0x1000 raw 11*4096\nend truncated\ntrailer 3-5\nbytes hex:4c4b4344465554520200000000000000 00*64');
    const d = openDump(file);
    try {
      const integ = d.integrity();
      expect([integ.state, integ.checksum, integ.problems]).toEqual(['truncated', 'unverified', []]);
      expect(integ.notes).toEqual([expect.stringMatching(/^an extension this reader does not know \("LKCDFUTR"\) at offset 0x[0-9a-f]+: not read$/)]);
      expect(integ.ranges).toEqual([{ start: 3n, end: 5n, reason: 'unspecified' }]);
    } finally {
      d.close();
    }
  });

  it('a record past dh_memory_size is corrupt, naming dp_address (strict open) or the page (salvage)', () => {
    const { file } = make('memory_size 0x10\n@0x1000 raw 11*4096\n@0x10000 raw 22*4096\nend');
    const err = (() => { try { openDump(file); } catch (e) { return e as DumpError; } throw new Error('no throw'); })();
    expect([err.code, err.where.field]).toEqual(['CORRUPT', 'dp_address']);
    expect(err.message).toContain('dh_memory_size');
    const d = openDump(file, { mode: 'salvage' });
    try {
      expect(d.integrity().problems.map((p) => p.pfn)).toEqual([0x10n]);
      expect([...d.pages()]).toEqual([1n]);
    } finally {
      d.close();
    }
  });
});

// ---- the flip sweep -------------------------------------------------------------------------

type FlipClass = 'dump_header' | 'arch header' | 'raw record header' | 'compressed record header' | 'raw page data' | 'compressed page data'
  | 'END record' | 'extension area' | 'locator';

/** Offsets to flip, by class, spread over each structure. */
function flipOffsets(b: MklkcdResult): Array<{ at: number; cls: FlipClass; pfn: bigint | null }> {
  const out: Array<{ at: number; cls: FlipClass; pfn: bigint | null }> = [];
  for (let o = 0; o < dump_header.size; o += 7) out.push({ at: o, cls: 'dump_header', pfn: null });
  for (let o = dump_header.size; o < dump_header.size + dump_header_asm.size; o += 97) out.push({ at: o, cls: 'arch header', pfn: null });
  for (const r of b.records) {
    if (r.kind !== 'page') continue;
    const raw = r.dpFlags === 1;
    for (let o = 0; o < 16; o++) out.push({ at: Number(r.offset) + o, cls: raw ? 'raw record header' : 'compressed record header', pfn: r.pfn });
    for (const f of [0, 1, Math.floor(r.dpSize / 2), r.dpSize - 1]) {
      out.push({ at: Number(r.dataOffset) + f, cls: raw ? 'raw page data' : 'compressed page data', pfn: r.pfn });
    }
  }
  for (let o = 0; o < 16; o++) out.push({ at: Number(b.endOffset!) + o, cls: 'END record', pfn: null });
  const areaLen = 16 + 3 * 24 + 16 + 24 + 6 * 12 + 16;
  for (let o = 0; o < areaLen; o += 3) out.push({ at: Number(b.extOffset!) + o, cls: 'extension area', pfn: null });
  for (let o = 0; o < 32; o++) out.push({ at: 8192 + o, cls: 'locator', pfn: null });
  return out;
}

describe('every flipped byte is detected', () => {
  const results = new Map<FlipClass, { flips: number; damagedPageNamed: number; damagedStructure: number; refused: number }>();
  const undetected: string[] = [];

  beforeAll(() => {
    const { built } = make(SPEC);
    for (const { at, cls, pfn } of flipOffsets(built)) {
      const bytes = Uint8Array.from(built.bytes);
      bytes[at] ^= 0x10;
      const tally = results.get(cls) ?? { flips: 0, damagedPageNamed: 0, damagedStructure: 0, refused: 0 };
      results.set(cls, tally);
      tally.flips++;
      let d: ProbedDump;
      try {
        d = openDump(bytesSource(`flip@${at}`, bytes), { mode: 'salvage', verifyPages: true });
      } catch (e) {
        if (e instanceof DumpError && e.code !== 'INTERNAL') { tally.refused++; continue; }
        throw e;
      }
      try {
        const integ = d.integrity();
        const named = integ.problems.filter((p) => p.pfn !== null).map((p) => p.pfn);
        if (integ.state !== 'damaged' || integ.checksum !== 'failed') {
          undetected.push(`${cls} flip at ${at}: state ${integ.state}, checksum ${integ.checksum}`);
        } else if (pfn !== null) {
          // Exactly the flipped record's page is named and reads as not present; every other page reads as written.
          const others = [...built.pages.keys()].filter((p) => p !== pfn);
          const wrong = others.filter((p) => !Buffer.from(d.readPage(p)).equals(Buffer.from(built.pages.get(p)!)));
          let faults = false;
          try { d.readPage(pfn); } catch (e) { faults = e instanceof FaultError; }
          if (named.length === 1 && named[0] === pfn && wrong.length === 0 && faults) tally.damagedPageNamed++;
          else undetected.push(`${cls} flip at ${at} (pfn ${pfn}): named ${named.join(',')}, ${wrong.length} other pages wrong, faults ${faults}`);
        } else {
          if (named.length === 0) tally.damagedStructure++;
          else undetected.push(`${cls} flip at ${at}: pages ${named.join(',')} named for a structure`);
        }
      } finally {
        d.close();
      }
    }
  });

  it('no flip goes undetected, and a record or page flip names exactly that page', () => {
    expect(undetected).toEqual([]);
  });

  it('record and page flips are damaged pages (never refusals); header flips are damaged headers or refusals', () => {
    for (const cls of ['raw record header', 'compressed record header', 'raw page data', 'compressed page data'] as const) {
      const t = results.get(cls)!;
      expect(t.damagedPageNamed, cls).toBe(t.flips);
    }
    for (const cls of ['dump_header', 'arch header', 'END record', 'extension area', 'locator'] as const) {
      const t = results.get(cls)!;
      expect(t.damagedStructure + t.refused, cls).toBe(t.flips);
    }
    const total = [...results.values()].reduce((n, t) => n + t.flips, 0);
    expect(total).toBeGreaterThan(300);
    // The figures for the report.
    console.log(`flip sweep (unit): ${total} flips; ${[...results].map(([c, t]) => `${c} ${t.flips} (page named ${t.damagedPageNamed}, structure ${t.damagedStructure}, refused ${t.refused})`).join('; ')}`);
  });
});
