/**
 * LZ4 pages (src/dump/codecs/lz4.ts and the pagezip addon's LZ4).
 *
 * The truths: the real `lz4` tool (its frames, parsed here from the frame
 * format's facts and checked with an XXH32 written here from the xxHash
 * spec, decoded block by block, must give the tool's input back; frames
 * built here around our blocks must be decoded by `lz4 -d` to our pages),
 * zlib's CRC32 for the batch's checks, and the two decoders against each
 * other on mutated blocks.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as zlib from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { needs, runTool, type ToolProbe } from '../../helpers/tools.js';
import { CorruptDumpError, InternalError } from '../../../src/codec/errors.js';
import {
  DUMP_COMPRESS_LZ4, DUMP_COMPRESS_NAMES, DUMP_DH_COMPRESSED, DUMP_DH_RAW, decodePage, isDumpCompress, lz4CompressPage,
  lz4DecodeBlock, lz4DecodePage, makePageCodec, PAGEZIP_LZ4, PAGEZIP_LZ4_VERSION, pagezipBatchCompressor, pagezipBatchDeflater,
} from '../../../src/dump/codecs/index.js';
import { createRequire } from 'node:module';

const FC_SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : 0x1cd;
const PAGE = 4096;
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

/** The addon built with liblz4, as a "tool": skipped without it, a failure under LKCD_REQUIRE_TOOLS=1. */
const PAGEZIP_WITH_LZ4: ToolProbe = {
  name: 'lkcd-pagezip built with liblz4',
  check: () => (PAGEZIP_LZ4 ? null : 'the addon was built without liblz4 (liblz4-dev)'),
};
const native = needs(PAGEZIP_WITH_LZ4);
const withTool = needs('lz4');
const withBoth = needs('lz4', PAGEZIP_WITH_LZ4);

/** The addon's raw lz4Decompress (not through lz4DecodePage), to test it as a decoder of its own. */
const addonLz4Decompress = (src: Uint8Array, dst: Uint8Array): number => {
  const a = createRequire(import.meta.url)('lkcd-pagezip') as { lz4Decompress: (s: Uint8Array, d: Uint8Array) => number };
  return a.lz4Decompress(src, dst);
};

// --- page contents -------------------------------------------------------------------

/** Deterministic bytes that do not compress (SHA-256 in counter mode). */
function noise(len: number, seed: string): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i * 32 < len; i++) out.set(createHash('sha256').update(`${seed}/${i}`).digest().subarray(0, Math.min(32, len - i * 32)), i * 32);
  return out;
}

function textPage(seed: number, len = PAGE): Uint8Array {
  const words = ['kernel', 'panic', 'page', 'dump', 'softboot', 'kexec', 'crash', 'memory', 'lkcd', 'struct'];
  let s = '';
  for (let i = 0; s.length < len; i++) s += `${words[(i * 7 + seed) % words.length]}[${(i * 31 + seed) % 1000}] `;
  return new Uint8Array(Buffer.from(s.slice(0, len), 'latin1'));
}

/** Short periods (offsets 1..7: the overlapping copies) and long runs (the 255-continued lengths). */
function repetitivePage(seed: number, len = PAGE): Uint8Array {
  const p = new Uint8Array(len);
  const period = 1 + (seed % 7);
  for (let i = 0; i < len; i++) p[i] = i < len / 2 ? (i % period) * 37 + seed : ((i >> 10) * 11) & 0xff;
  return p;
}

/** Page classes: [name, page]. */
function pageSet(): Array<[string, Uint8Array]> {
  const mixed = textPage(3);
  mixed.set(noise(1000, 'mixed'), 1500);
  return [
    ['zeros', new Uint8Array(PAGE)],
    ['text', textPage(1)],
    ['random', noise(PAGE, 'random')],
    ['repetitive', repetitivePage(2)],
    ['period-1', repetitivePage(7)],
    ['mixed', mixed],
  ];
}

// --- XXH32, from the xxHash specification (doc/xxhash_spec.md) -------------------------

const P1 = 0x9e3779b1;
const P2 = 0x85ebca77;
const P3 = 0xc2b2ae3d;
const P4 = 0x27d4eb2f;
const P5 = 0x165667b1;
const rotl = (x: number, r: number): number => ((x << r) | (x >>> (32 - r))) >>> 0;
const u32le = (b: Uint8Array, i: number): number => (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;

function xxh32(input: Uint8Array, seed = 0): number {
  const len = input.length;
  let i = 0;
  let acc: number;
  if (len >= 16) {
    const v = [(seed + P1 + P2) >>> 0, (seed + P2) >>> 0, seed >>> 0, (seed - P1) >>> 0];
    const round = (a: number, lane: number): number => Math.imul(rotl((a + Math.imul(lane, P2)) >>> 0, 13), P1) >>> 0;
    for (; i + 16 <= len; i += 16) for (let k = 0; k < 4; k++) v[k] = round(v[k], u32le(input, i + 4 * k));
    acc = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) >>> 0;
  } else {
    acc = (seed + P5) >>> 0;
  }
  acc = (acc + len) >>> 0;
  for (; i + 4 <= len; i += 4) acc = Math.imul(rotl((acc + Math.imul(u32le(input, i), P3)) >>> 0, 17), P4) >>> 0;
  for (; i < len; i++) acc = Math.imul(rotl((acc + Math.imul(input[i], P5)) >>> 0, 11), P1) >>> 0;
  acc = (acc ^ (acc >>> 15)) >>> 0;
  acc = Math.imul(acc, P2) >>> 0;
  acc = (acc ^ (acc >>> 13)) >>> 0;
  acc = Math.imul(acc, P3) >>> 0;
  return (acc ^ (acc >>> 16)) >>> 0;
}

// --- the LZ4 frame, from the frame format (doc/lz4_Frame_format.md) -------------------

const LZ4F_MAGIC = 0x184d2204;
const BLOCK_MAX = [0, 0, 0, 0, 64 << 10, 256 << 10, 1 << 20, 4 << 20];

interface Frame {
  blocks: Array<{ compressed: boolean; data: Uint8Array }>;
  blockMax: number;
  contentSize: bigint | null;
  contentChecksum: number | null;
}

/** Parses an LZ4 frame of independent blocks, checking its header checksum with xxh32. */
function parseFrame(f: Uint8Array): Frame {
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  expect(dv.getUint32(0, true), 'magic').toBe(LZ4F_MAGIC);
  const flg = f[4];
  const bd = f[5];
  expect(flg >> 6, 'FLG version').toBe(1);
  expect((flg >> 5) & 1, 'FLG B.Indep').toBe(1);
  const blockChecksum = (flg >> 4) & 1;
  const hasSize = (flg >> 3) & 1;
  const hasContentChecksum = (flg >> 2) & 1;
  expect(flg & 1, 'FLG DictID').toBe(0);
  let at = 6;
  const contentSize = hasSize ? dv.getBigUint64(at, true) : null;
  at += hasSize ? 8 : 0;
  // HC: the second byte of XXH32 of the descriptor (FLG to the end of the optional fields), seed 0.
  expect(f[at], 'header checksum').toBe((xxh32(f.subarray(4, at)) >>> 8) & 0xff);
  at += 1;
  const blocks: Frame['blocks'] = [];
  for (let guard = 0; ; guard++) {
    expect(guard).toBeLessThan(1 << 16);
    const word = dv.getUint32(at, true);
    at += 4;
    if (word === 0) break; // EndMark
    const size = word & 0x7fffffff;
    blocks.push({ compressed: (word & 0x80000000) === 0, data: f.subarray(at, at + size) });
    at += size + (blockChecksum ? 4 : 0);
  }
  const contentChecksum = hasContentChecksum ? dv.getUint32(at, true) : null;
  at += hasContentChecksum ? 4 : 0;
  expect(at, 'frame length').toBe(f.length);
  return { blocks, blockMax: BLOCK_MAX[(bd >> 4) & 7], contentSize, contentChecksum };
}

/** A frame of independent 64 KB blocks around `blocks` (stored raw when not compressed), no checksums. */
function buildFrame(blocks: Array<{ compressed: boolean; data: Uint8Array }>): Uint8Array {
  const flg = 0x60; // version 01, B.Indep
  const bd = 4 << 4; // 64 KB blocks
  const head = [0x04, 0x22, 0x4d, 0x18, flg, bd, (xxh32(Uint8Array.from([flg, bd])) >>> 8) & 0xff];
  const parts: Uint8Array[] = [Uint8Array.from(head)];
  for (const b of blocks) {
    const w = Buffer.alloc(4);
    w.writeUInt32LE((b.data.length | (b.compressed ? 0 : 0x80000000)) >>> 0);
    parts.push(w, b.data);
  }
  parts.push(new Uint8Array(4));
  return Buffer.concat(parts);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-lz4-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('XXH32 written from the spec', () => {
  it('gives the published test values', () => {
    // xxHash's own sanity values: empty input, seed 0 and seed PRIME32_1.
    expect(xxh32(new Uint8Array(0))).toBe(0x02cc5d05);
    expect(xxh32(new Uint8Array(0), P1)).toBe(0x36b78ae7);
  });
});

describe('the TypeScript LZ4 block decoder against the lz4 tool', () => {
  const inputs: Array<[string, Uint8Array]> = [
    ['zeros', new Uint8Array(200_000)],
    ['text', textPage(5, 150_000)],
    ['random', noise(70_000, 'tool')],
    ['repetitive', repetitivePage(4, 131_072)],
    ['mixed', Buffer.concat([textPage(9, 40_000), noise(30_000, 'm'), new Uint8Array(50_000), repetitivePage(3, 20_000)])],
  ];
  for (const level of ['-1', '-9']) {
    withTool.it.for(inputs)(`lz4 ${level}: every block of the frame decodes to the input ($0)`, ([name, input]) => {
      const src = path.join(tmp, `${name}${level}`);
      fs.writeFileSync(src, input);
      const r = runTool('lz4', ['-q', '-f', level, '-B4', '--content-size', src, `${src}.lz4`]);
      expect(r.status, r.stderr).toBe(0);
      const frame = parseFrame(new Uint8Array(fs.readFileSync(`${src}.lz4`)));
      expect(frame.contentSize).toBe(BigInt(input.length));
      const outTs: Uint8Array[] = [];
      const outNative: Uint8Array[] = [];
      let compressed = 0;
      for (const b of frame.blocks) {
        if (!b.compressed) {
          outTs.push(b.data);
          outNative.push(b.data);
          continue;
        }
        compressed++;
        const dst = new Uint8Array(frame.blockMax);
        const n = lz4DecodeBlock(b.data, dst);
        outTs.push(dst.slice(0, n));
        if (PAGEZIP_LZ4) {
          const d2 = new Uint8Array(frame.blockMax);
          outNative.push(d2.slice(0, addonLz4Decompress(b.data, d2)));
        }
      }
      const got = Buffer.concat(outTs);
      expect(Buffer.compare(got, input), name).toBe(0);
      // The frame's content checksum is XXH32 of the input: the check on xxh32's long path.
      expect(frame.contentChecksum).toBe(xxh32(input));
      if (PAGEZIP_LZ4) expect(Buffer.compare(Buffer.concat(outNative), input)).toBe(0);
      if (name !== 'random') expect(compressed).toBeGreaterThan(0);
    });
  }
});

describe('the native batch with codec lz4', () => {
  const set = pageSet();
  const count = set.length * 4;
  const src = Buffer.alloc(count * PAGE);
  for (let i = 0; i < count; i++) src.set(set[i % set.length][1], i * PAGE);

  function runBatch(threads: number): { out: Buffer; sizes: Int32Array; crcs: Uint32Array; engine: string } {
    const b = pagezipBatchCompressor('lz4', threads, PAGE)!;
    expect(b).not.toBeNull();
    const out = Buffer.alloc(count * PAGE);
    const sizes = new Int32Array(count);
    const crcs = new Uint32Array(count);
    b.start(src, count, out, sizes, crcs);
    b.wait();
    const engine = b.engine;
    b.close();
    return { out, sizes, crcs, engine };
  }

  native.it('stores each page as a block the TS decoder gives back, random pages raw, crcs of the stored bytes', () => {
    const { out, sizes, crcs, engine } = runBatch(2);
    expect(engine).toBe(`lz4 ${PAGEZIP_LZ4_VERSION}`);
    expect(engine).toMatch(/^lz4 \d+\.\d+\.\d+$/);
    for (let i = 0; i < count; i++) {
      const [name, page] = set[i % set.length];
      const n = sizes[i];
      if (name === 'random') {
        expect(n, `page ${i} (${name})`).toBe(0);
        expect(crcs[i]).toBe(zlib.crc32(page) >>> 0);
        continue;
      }
      expect(n, `page ${i} (${name})`).toBeGreaterThan(0);
      expect(n).toBeLessThan(PAGE);
      const block = out.subarray(i * PAGE, i * PAGE + n);
      const dst = new Uint8Array(PAGE);
      expect(lz4DecodeBlock(block, dst), `page ${i} (${name})`).toBe(PAGE);
      expect(Buffer.compare(dst, page), `page ${i} (${name})`).toBe(0);
      expect(crcs[i], `page ${i} (${name})`).toBe(zlib.crc32(block) >>> 0);
    }
  });

  native.it('gives the same bytes on 1, 2 and 5 threads as lz4CompressPage gives one page at a time', () => {
    const want = Array.from({ length: count }, (_, i) => {
      const dst = new Uint8Array(PAGE - 1);
      const n = lz4CompressPage(src.subarray(i * PAGE, (i + 1) * PAGE), dst);
      return Buffer.from(dst.subarray(0, n)).toString('hex');
    });
    for (const threads of [1, 2, 5]) {
      const { out, sizes } = runBatch(threads);
      const got = Array.from({ length: count }, (_, i) => out.subarray(i * PAGE, i * PAGE + sizes[i]).toString('hex'));
      expect(got, `${threads} threads`).toEqual(want);
    }
  });

  withBoth.it('lz4 -d decodes a frame built around our blocks to the pages', () => {
    const { out, sizes } = runBatch(2);
    const blocks = Array.from({ length: count }, (_, i) => (sizes[i] > 0
      ? { compressed: true, data: out.subarray(i * PAGE, i * PAGE + sizes[i]) }
      : { compressed: false, data: src.subarray(i * PAGE, (i + 1) * PAGE) }));
    const file = path.join(tmp, 'ours.lz4');
    fs.writeFileSync(file, buildFrame(blocks));
    const r = runTool('lz4', ['-q', '-d', '-f', file, `${file}.out`]);
    expect(r.status, r.stderr).toBe(0);
    expect(Buffer.compare(fs.readFileSync(`${file}.out`), src)).toBe(0);
  });

  native.it('refuses an unknown codec and keeps deflate as the default', () => {
    const a = createRequire(import.meta.url)('lkcd-pagezip') as {
      BatchDeflater: new (l: number, t: number, p: number, z?: boolean, c?: string) => { close(): void };
    };
    expect(() => new a.BatchDeflater(1, 1, PAGE, false, 'lzma')).toThrow(/unknown codec "lzma"/);
    expect(() => new a.BatchDeflater(10, 1, PAGE, false, 'lz4')).toThrow(/level 0\.\.9/);
    new a.BatchDeflater(1, 1, PAGE, undefined, undefined).close();
  });
});

describe('the deflate batch fed LZ4 blocks (the writeout turning LZ4 pages into GZIP)', () => {
  const set = pageSet();
  const count = set.length * 3;
  /** Page i's LZ4 block (from lz4CompressPage), or the page itself where LZ4 did not shrink it. */
  function lz4Inputs(): { src: Buffer; lengths: Int32Array } {
    const src = Buffer.alloc(count * PAGE);
    const lengths = new Int32Array(count);
    const block = new Uint8Array(PAGE);
    for (let i = 0; i < count; i++) {
      const page = set[i % set.length][1];
      const n = lz4CompressPage(page, block);
      if (n > 0) { src.set(block.subarray(0, n), i * PAGE); lengths[i] = n; } else { src.set(page, i * PAGE); lengths[i] = PAGE; }
    }
    return { src, lengths };
  }

  native.it('stores for each page what deflating the page itself stores: the same stream, or the page; crcs of those bytes', () => {
    const { src, lengths } = lz4Inputs();
    const b = pagezipBatchDeflater(1, 2, PAGE)!;
    const out = Buffer.alloc(count * PAGE);
    const sizes = new Int32Array(count);
    const crcs = new Uint32Array(count);
    b.start(src, count, out, sizes, crcs, lengths);
    b.wait();
    // The truth: the pages themselves deflated by a batch without LZ4 inputs; each stream inflates (node:zlib) to its page.
    const plain = pagezipBatchDeflater(1, 1, PAGE)!;
    const pages = Buffer.concat(Array.from({ length: count }, (_, i) => set[i % set.length][1]));
    const outPlain = Buffer.alloc(count * PAGE);
    const sizesPlain = new Int32Array(count);
    plain.start(pages, count, outPlain, sizesPlain);
    plain.wait();
    plain.close();
    b.close();
    for (let i = 0; i < count; i++) {
      const page = set[i % set.length][1];
      expect(sizes[i], `page ${i}`).toBe(sizesPlain[i]);
      const stored = sizes[i] > 0 && sizes[i] < PAGE ? out.subarray(i * PAGE, i * PAGE + sizes[i]) : out.subarray(i * PAGE, (i + 1) * PAGE);
      if (sizes[i] > 0 && sizes[i] < PAGE) expect(Buffer.compare(zlib.inflateSync(stored), Buffer.from(page))).toBe(0);
      else expect(Buffer.compare(stored, Buffer.from(page))).toBe(0);
      expect(crcs[i]).toBe(zlib.crc32(stored) >>> 0);
    }
  });

  native.it('a block that does not decode to a page fails the batch with CorruptDumpError', () => {
    const { src, lengths } = lz4Inputs();
    const i = lengths.findIndex((n) => n < PAGE);
    lengths[i] -= 1;
    const b = pagezipBatchDeflater(1, 2, PAGE)!;
    const sizes = new Int32Array(count);
    b.start(src, count, Buffer.alloc(count * PAGE), sizes, new Uint32Array(count), lengths);
    expect(() => b.wait()).toThrow(CorruptDumpError);
    expect(sizes[i]).toBe(-1);
    b.close();
  });
});

describe('corrupt LZ4 blocks', () => {
  // 1 literal 'a', then a match (offset in bytes 2-3, length 4), then 'bcdefghijklm' as the last literals.
  const tail = 'c0 62636465666768696a6b6c6d';
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['offset 0', bytes(`10 61 0000 ${tail}`), /offset 0/],
    ['offset before the start', bytes(`10 61 0200 ${tail}`), /before the start|refuses/],
    ['truncated after a match', bytes('10 61 0100'), /too few for a match|refuses/],
    ['truncated literal length', bytes('f0 ff ff'), /truncated|refuses/],
    ['overlong literal run', bytes('f0 ff 10 61 62 63 64 65 66 67 68 69 6a'), /overrun the input|refuses/],
    ['truncated offset', bytes('20 61 62 01'), /truncated|refuses/],
    ['empty input', new Uint8Array(0), /empty|refuses/],
  ];
  it.for(cases)('the TS decoder: $0', ([, block, re]) => {
    const dst = new Uint8Array(PAGE);
    expect(() => lz4DecodeBlock(block, dst)).toThrow(CorruptDumpError);
    expect(() => lz4DecodeBlock(block, dst)).toThrow(re);
  });
  native.it.for(cases)('lz4DecodePage through the addon: $0', ([, block, re]) => {
    const dst = new Uint8Array(PAGE);
    expect(() => lz4DecodePage(block, dst)).toThrow(CorruptDumpError);
    expect(() => lz4DecodePage(block, dst)).toThrow(re);
  });

  it('the block with a valid offset decodes (the vectors above differ from it in one field)', () => {
    const dst = new Uint8Array(PAGE);
    const n = lz4DecodeBlock(bytes(`10 61 0100 ${tail}`), dst);
    expect(Buffer.from(dst.subarray(0, n)).toString('latin1')).toBe('aaaaabcdefghijklm');
    if (PAGEZIP_LZ4) expect(lz4DecodePage(bytes(`10 61 0100 ${tail}`), new Uint8Array(PAGE))).toBe(n);
  });

  // The end-of-block conditions, as LZ4_decompress_safe checks them: against the output's end and on the input side.
  const endCases: Array<[string, Uint8Array, number, RegExp]> = [
    ['fewer than 8 input bytes after a sequence that is not the last', bytes('10 61 0100 30 626364'), PAGE, /too few for a match and the last 5 literals/],
    ['a match starting less than 12 bytes before the end of the output', bytes('10 61 0100 50 6263646566'), 10, /starts less than 12 bytes before the end/],
    ['a match ending inside the last 5 bytes of the output', bytes('18 61 0100 50 6263646566'), 14, /ends inside the last 5 bytes/],
  ];
  it.for(endCases)('the TS decoder refuses $0', ([, block, room, re]) => {
    expect(() => lz4DecodeBlock(block, new Uint8Array(room))).toThrow(re);
  });
  native.it.for(endCases)('liblz4 refuses $0 too', ([, block, room]) => {
    expect(() => lz4DecodePage(block, new Uint8Array(room))).toThrow(/LZ4_decompress_safe refuses it/);
  });
  native.it('both take the same blocks when the output has room', () => {
    // The second and third vectors above, decoded into a page: 10 and 17 bytes.
    for (const [h, text] of [['10 61 0100 50 6263646566', 'aaaaabcdef'], ['18 61 0100 50 6263646566', 'aaaaaaaaaaaaabcdef']] as const) {
      const a = new Uint8Array(PAGE);
      const b = new Uint8Array(PAGE);
      expect(Buffer.from(a.subarray(0, lz4DecodeBlock(bytes(h), a))).toString('latin1')).toBe(text);
      expect(Buffer.from(b.subarray(0, lz4DecodePage(bytes(h), b))).toString('latin1')).toBe(text);
    }
  });

  native.it('an output that does not fit is refused by both decoders, never written past', () => {
    const page = textPage(11);
    const blk = new Uint8Array(PAGE);
    const n = lz4CompressPage(page, blk);
    const room = new Uint8Array(PAGE);
    room.fill(0xa5);
    const dst = room.subarray(0, PAGE / 2);
    expect(() => lz4DecodeBlock(blk.subarray(0, n), dst)).toThrow(/output overrun|end of block/);
    expect(() => lz4DecodePage(blk.subarray(0, n), dst)).toThrow(CorruptDumpError);
    expect(room.subarray(PAGE / 2).every((b) => b === 0xa5)).toBe(true);
  });

  native.it('every strict prefix of a block is refused, or gives less than the page', () => {
    for (const [name, page] of pageSet()) {
      const blk = new Uint8Array(PAGE);
      const n = lz4CompressPage(page, blk);
      if (n === 0) continue;
      for (let cut = 0; cut < n; cut++) {
        for (const decode of [lz4DecodeBlock, lz4DecodePage]) {
          let produced = -1;
          try {
            produced = decode(blk.subarray(0, cut), new Uint8Array(PAGE));
          } catch (err) {
            expect(err, `${name} cut at ${cut}`).toBeInstanceOf(CorruptDumpError);
          }
          expect(produced, `${name} cut at ${cut}`).toBeLessThan(PAGE);
        }
      }
    }
  });

  native.it('on mutated blocks the TS decoder refuses all liblz4 refuses, and both give the same bytes for the rest', () => {
    const blocks = pageSet().map(([, p]) => {
      const dst = new Uint8Array(PAGE);
      return dst.slice(0, lz4CompressPage(p, dst));
    }).filter((b) => b.length > 0);
    fc.assert(fc.property(
      fc.nat(blocks.length - 1),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
      fc.option(fc.nat(), { nil: undefined }),
      (which, flips, cut) => {
        const blk = Uint8Array.from(blocks[which]);
        for (const [at, x] of flips) blk[at % blk.length] ^= x;
        const input = cut === undefined ? blk : blk.subarray(0, cut % blk.length);
        const a = new Uint8Array(PAGE);
        const b = new Uint8Array(PAGE);
        let ra: number | string;
        let rb: number | string;
        try {
          ra = lz4DecodeBlock(input, a);
        } catch (err) {
          expect(err).toBeInstanceOf(CorruptDumpError);
          ra = (err as Error).message;
        }
        try {
          rb = lz4DecodePage(input, b);
        } catch (err) {
          expect(err).toBeInstanceOf(CorruptDumpError);
          rb = (err as Error).message;
        }
        if (typeof ra === 'number' && typeof rb === 'number') {
          expect(ra).toBe(rb);
          expect(Buffer.compare(a.subarray(0, ra), b.subarray(0, ra))).toBe(0);
        } else if (typeof rb === 'number') {
          // liblz4's fast paths skip some end-of-block checks its careful path makes: only those may differ.
          expect(ra).toMatch(/^corrupt LZ4 block: end of block: /);
        } else {
          // What liblz4 refuses, the TS decoder refuses too.
          expect(typeof ra, `TS decoded what liblz4 refuses (${rb})`).toBe('string');
        }
      }), { seed: FC_SEED, numRuns: 3000 });
  });
});

describe('DUMP_COMPRESS_LZ4 pages', () => {
  it('is ours: "LZ4" in ASCII, named lz4, and a known compression', () => {
    expect(DUMP_COMPRESS_LZ4).toBe(Buffer.from('LZ4').readUIntBE(0, 3));
    expect(DUMP_COMPRESS_NAMES[DUMP_COMPRESS_LZ4]).toBe('lz4');
    expect(isDumpCompress(DUMP_COMPRESS_LZ4)).toBe(true);
  });

  native.it('round-trips every page class through makePageCodec: compressed when smaller, raw otherwise', () => {
    const codec = makePageCodec(DUMP_COMPRESS_LZ4);
    const scratch = new Uint8Array(PAGE);
    const out = new Uint8Array(PAGE);
    for (const [name, page] of pageSet()) {
      const e = codec.encode(page, scratch);
      expect(e.flags, name).toBe(name === 'random' ? DUMP_DH_RAW : DUMP_DH_COMPRESSED);
      expect(e.size, name).toBe(e.data.length);
      if (e.flags === DUMP_DH_COMPRESSED) {
        expect(e.size).toBeLessThan(PAGE);
        // The truth is the TS decoder, written from the format: the stored bytes are one LZ4 block of the page.
        const check = new Uint8Array(PAGE);
        expect(lz4DecodeBlock(e.data, check)).toBe(PAGE);
        expect(Buffer.compare(check, page), name).toBe(0);
      }
      expect(Buffer.compare(codec.decode(e.flags, e.data, out), page), name).toBe(0);
      expect(Buffer.compare(decodePage(e.flags, e.data, DUMP_COMPRESS_LZ4, new Uint8Array(PAGE)), page), name).toBe(0);
    }
    codec.close();
  });

  it('decodes a page a block from the lz4 tool describes, without compressing anything', () => {
    // One literal 0x41 and a 4090-byte match at offset 1 (4091 'A'), then 5 literals 'B': 4096 bytes.
    // token 0x1f, literal 'A', offset 0100, match length 15 + 255*15 + 146 = 4086 (+4 = 4090), then 5 literals.
    const ext = [...new Array<number>(15).fill(0xff), 4086 - 15 - 255 * 15];
    const block = Uint8Array.from([0x1f, 0x41, 0x01, 0x00, ...ext, 0x50, 0x42, 0x42, 0x42, 0x42, 0x42]);
    const want = new Uint8Array(PAGE).fill(0x41);
    want.fill(0x42, PAGE - 5);
    const out = decodePage(DUMP_DH_COMPRESSED, block, DUMP_COMPRESS_LZ4, new Uint8Array(PAGE));
    expect(Buffer.compare(out, want)).toBe(0);
    expect(Buffer.compare(makePageCodec(DUMP_COMPRESS_LZ4).decode(DUMP_DH_COMPRESSED, block, new Uint8Array(PAGE)), want)).toBe(0);
  });

  it('refuses a corrupt page, a short page and an oversized record, as for GZIP and RLE', () => {
    const out = new Uint8Array(PAGE);
    expect(() => decodePage(DUMP_DH_COMPRESSED, bytes('10 61 0000 c0 62636465666768696a6b6c6d'), DUMP_COMPRESS_LZ4, out))
      .toThrow(/lz4 page does not decompress: corrupt LZ4 block: .*offset 0/);
    // A valid block of 17 bytes is not a page.
    expect(() => decodePage(DUMP_DH_COMPRESSED, bytes('10 61 0100 c0 62636465666768696a6b6c6d'), DUMP_COMPRESS_LZ4, out))
      .toThrow(/lz4 page decompresses to 17 bytes, expected the page size 4096/);
    expect(() => decodePage(DUMP_DH_COMPRESSED, new Uint8Array(PAGE + 1), DUMP_COMPRESS_LZ4, out))
      .toThrow(/compressed dp_size 4097 exceeds page size 4096/);
    for (const f of [DUMP_DH_RAW, DUMP_DH_COMPRESSED]) {
      let err: unknown;
      try {
        decodePage(f, f === DUMP_DH_RAW ? new Uint8Array(17) : bytes('f0 ff'), DUMP_COMPRESS_LZ4, out);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CorruptDumpError);
    }
  });

  it('encode without liblz4 is an internal error naming what is missing; with it, it works', () => {
    const codec = makePageCodec(DUMP_COMPRESS_LZ4);
    if (PAGEZIP_LZ4) {
      expect(codec.encode(new Uint8Array(PAGE), new Uint8Array(PAGE)).flags).toBe(DUMP_DH_COMPRESSED);
    } else {
      expect(() => codec.encode(new Uint8Array(PAGE), new Uint8Array(PAGE))).toThrow(InternalError);
      expect(() => codec.encode(new Uint8Array(PAGE), new Uint8Array(PAGE))).toThrow(/needs the pagezip addon built with liblz4/);
    }
  });
});
