import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import * as zlib from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { needs, PYTHON } from '../../helpers/tools.js';
import { CorruptDumpError, DumpError } from '../../../src/codec/errors.js';
import {
  DUMP_COMPRESS_GZIP, DUMP_COMPRESS_NONE, DUMP_COMPRESS_RLE, DUMP_DH_COMPRESSED, DUMP_DH_END, DUMP_DH_RAW,
  DUMP_GZIP_DEFAULT_LEVEL, GZIP_ENGINE, GZIP_ENGINE_LOAD_ERROR, decodePage, gzipEngines, makePageCodec,
  openPageDeflater, openPageInflater, PAGEZIP_DEFLATE_ENGINE, pagezipBatchDeflater, rleCompress, rleUncompress, type DumpCompress,
} from '../../../src/dump/codecs/index.js';

const FC_SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : 0x1cd;
const PAGE = 4096;

const hex = (u8: Uint8Array): string => Buffer.from(u8).toString('hex');
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
const fill = (n: number, v: number): number[] => new Array<number>(n).fill(v);

/** RLE-encodes with a scratch buffer; '' when the encoder declines (not strictly smaller). */
function rle(input: Uint8Array | number[]): string {
  const src = Uint8Array.from(input);
  const dst = new Uint8Array(Math.max(0, src.length - 1));
  const n = rleCompress(src, dst);
  return n === 0 ? '' : hex(dst.subarray(0, n));
}

/**
 * An independent RLE encoder written straight from the table in the
 * reference (section 1.8): one byte at a time, a run flushed when a
 * different byte arrives or when it already holds 256 bytes, and the
 * "would exceed the input size" check before every write.
 */
function referenceRle(src: Uint8Array): Uint8Array | null {
  const out: number[] = [];
  let value = -1;
  let count = 0;
  const flush = (): boolean => {
    const code = count >= 2 ? [0, count, value]
      : value === 0 ? (count === 0 ? [0, 0] : [0, 1, 0])
        : (count === 0 ? [value] : [value, value]);
    if (out.length + code.length > src.length) return false;
    out.push(...code);
    return true;
  };
  for (let i = 0; i < src.length; i++) {
    if (i === 0) {
      value = src[0];
      count = 0;
    } else if (count === 255 || src[i] !== value) {
      if (!flush()) return null;
      value = src[i];
      count = 0;
    } else {
      count++;
    }
  }
  if (src.length > 0 && !flush()) return null;
  // The caller's rule: compressed only when strictly smaller.
  return out.length < src.length ? Uint8Array.from(out) : null;
}

/** A page built from segments: runs of one byte, zero stretches, random bytes, text. */
const segmentArb = fc.oneof(
  fc.record({ kind: fc.constant('run' as const), value: fc.integer({ min: 0, max: 255 }), len: fc.integer({ min: 1, max: 700 }) }),
  fc.record({ kind: fc.constant('zero' as const), len: fc.integer({ min: 1, max: 1200 }) }),
  fc.record({ kind: fc.constant('random' as const), data: fc.uint8Array({ minLength: 1, maxLength: 300 }) }),
  fc.record({ kind: fc.constant('text' as const), text: fc.string({ minLength: 1, maxLength: 200 }) }),
);
const structuredPageArb = fc.array(segmentArb, { minLength: 1, maxLength: 40 }).map((segs) => {
  const page = new Uint8Array(PAGE);
  let at = 0;
  for (const s of segs) {
    if (at >= PAGE) break;
    switch (s.kind) {
      case 'run': page.fill(s.value, at, at + s.len); at += s.len; break;
      case 'zero': at += s.len; break;
      case 'random': page.set(s.data.subarray(0, PAGE - at), at); at += s.data.length; break;
      case 'text': {
        const t = Buffer.from(s.text.repeat(4), 'latin1');
        page.set(t.subarray(0, PAGE - at), at);
        at += t.length;
      }
    }
  }
  return page;
});
const randomPageArb = fc.uint8Array({ minLength: PAGE, maxLength: PAGE });
/** Mostly a small alphabet, so runs of every length (and the 256 cap) happen often. */
const smallAlphabetArb = fc.array(fc.constantFrom(0, 0, 0, 1, 7, 0xff), { maxLength: 1500 }).map((a) => Uint8Array.from(a));

/** A page of SHA-256 output: no deflate shrinks it. */
function incompressiblePage(seed: number): Uint8Array {
  const page = new Uint8Array(PAGE);
  for (let at = 0; at < PAGE; at += 32) page.set(createHash('sha256').update(`${seed}:${at}`).digest(), at);
  return page;
}

function textPage(seed: number): Uint8Array {
  const page = new Uint8Array(PAGE);
  const line = Buffer.from(`pid ${seed} state=S comm=kworker/${seed}:1 flags=0x${(seed * 2654435761 >>> 0).toString(16)}\n`);
  for (let at = 0; at + line.length < PAGE - 600; at += line.length) page.set(line, at);
  return page;
}

describe('LKCD RLE (kernel dump_compress_rle / crash lkcd_uncompress_RLE)', () => {
  it('encodes an all-zero page as 16 x "00 ff 00" = 48 bytes', () => {
    const out = rle(new Uint8Array(PAGE));
    expect(out).toBe('00ff00'.repeat(16));
    expect(out.length / 2).toBe(48);
  });

  it('07 07 07 01 -> 00 02 07 01 (declined alone: 4 bytes is not smaller than 4)', () => {
    expect(rle([7, 7, 7, 1])).toBe('');
    // Followed by 256 zeros the page shrinks, and the vector is its prefix.
    expect(rle([7, 7, 7, 1, ...fill(256, 0)])).toBe('00020701' + '00ff00');
    expect(hex(decode(bytes('00 02 07 01'), 4))).toBe('07070701');
  });

  it('a single zero is 00 00 and two zeros are 00 01 00', () => {
    expect(rle([...fill(10, 1), 0, ...fill(10, 2)])).toBe('000901' + '0000' + '000902');
    expect(rle([...fill(10, 1), 0, 0, ...fill(10, 2)])).toBe('000901' + '000100' + '000902');
    expect(hex(decode(bytes('00 00'), 1))).toBe('00');
    expect(hex(decode(bytes('00 01 00'), 2))).toBe('0000');
    // Alone, neither shrinks.
    expect(rle([0])).toBe('');
    expect(rle([0, 0])).toBe('');
  });

  it('keeps one or two non-zero bytes literal and escapes three or more', () => {
    expect(rle([9, 9, ...fill(300, 0)])).toBe('0909' + '00ff00' + '002b00');
    expect(rle([9, 9, 9, ...fill(300, 0)])).toBe('000209' + '00ff00' + '002b00');
  });

  it('cuts runs at 256 bytes', () => {
    expect(rle(fill(256, 0x41))).toBe('00ff41');
    expect(rle(fill(257, 0x41))).toBe('00ff41' + '41');
    expect(rle(fill(258, 0x41))).toBe('00ff41' + '4141');
    expect(rle(fill(259, 0x41))).toBe('00ff41' + '000241');
    expect(rle(fill(257, 0))).toBe('00ff00' + '0000');
    expect(hex(decode(bytes('00ff41 41'), 257))).toBe('41'.repeat(257));
  });

  it('declines empty and one-byte input', () => {
    expect(rleCompress(new Uint8Array(0), new Uint8Array(0))).toBe(0);
    expect(rleCompress(Uint8Array.of(5), new Uint8Array(0))).toBe(0);
  });

  it('matches a byte-at-a-time encoder written from the reference table', () => {
    fc.assert(fc.property(fc.oneof(smallAlphabetArb, structuredPageArb, fc.uint8Array({ maxLength: 64 })), (src) => {
      const want = referenceRle(src);
      expect(rle(src)).toBe(want ? hex(want) : '');
    }), { seed: FC_SEED, numRuns: 400 });
  });

  it('round-trips structured and random pages', () => {
    const dst = new Uint8Array(PAGE - 1);
    const back = new Uint8Array(PAGE);
    fc.assert(fc.property(fc.oneof(structuredPageArb, randomPageArb, smallAlphabetArb), (src) => {
      const n = rleCompress(src, dst);
      if (n === 0) return;
      expect(n).toBeLessThan(src.length);
      const out = back.subarray(0, src.length);
      expect(rleUncompress(dst.subarray(0, n), out)).toBe(src.length);
      expect(Buffer.compare(out, src)).toBe(0);
    }), { seed: FC_SEED, numRuns: 300 });
  });

  it('declines a random page', () => {
    expect(rleCompress(new Uint8Array(randomBytes(PAGE)), new Uint8Array(PAGE))).toBe(0);
  });

  it('rejects a truncated escape and output overflow with CorruptDumpError', () => {
    const out = new Uint8Array(16);
    expect(() => rleUncompress(bytes('41 00'), out)).toThrow(CorruptDumpError);
    expect(() => rleUncompress(bytes('41 00 05'), out)).toThrow(/no value byte/);
    expect(() => rleUncompress(bytes('00 10 41'), out)).toThrow(/overflows the 16-byte page/);
    expect(() => rleUncompress(bytes('41'.repeat(17)), out)).toThrow(CorruptDumpError);
    expect(rleUncompress(bytes('00 0f 41'), out)).toBe(16);
  });

  it('refuses a scratch buffer smaller than input - 1 as a bug', () => {
    expect(() => rleCompress(new Uint8Array(PAGE), new Uint8Array(100))).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });
});

function decode(src: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  expect(rleUncompress(src, out)).toBe(size);
  return out;
}

describe('gzip pages (zlib streams)', () => {
  it('uses the lkcd-pagezip addon built by npm install', () => {
    expect(GZIP_ENGINE_LOAD_ERROR?.message ?? null).toBeNull();
    expect(GZIP_ENGINE).toBe('lkcd-pagezip');
    expect(gzipEngines()).toEqual(['lkcd-pagezip', 'node:zlib']);
  });

  it('deflates through libdeflate when the addon was built with it (libdeflate-dev installed, as .ci/run does)', () => {
    expect(PAGEZIP_DEFLATE_ENGINE).toBe(fs.existsSync('/usr/include/libdeflate.h') ? 'libdeflate' : 'zlib');
  });

  it('writes zlib streams that node:zlib inflateSync decodes to the same page; incompressible pages are stored raw', () => {
    const d = openPageDeflater(DUMP_GZIP_DEFAULT_LEVEL);
    const dst = new Uint8Array(PAGE);
    fc.assert(fc.property(structuredPageArb, (page) => {
      const n = d.deflate(page, dst);
      if (n === 0) {
        // "Not strictly smaller": zlib at the same level cannot shrink it much either.
        expect(zlib.deflateSync(page, { level: DUMP_GZIP_DEFAULT_LEVEL }).length).toBeGreaterThan(PAGE - PAGE / 16);
        return;
      }
      expect(n).toBeLessThan(PAGE);
      // RFC 1950: CMF 0x78 (deflate, 32 KiB window), FCHECK makes CMF*256+FLG a multiple of 31.
      expect(dst[0]).toBe(0x78);
      expect(((dst[0] << 8) | dst[1]) % 31).toBe(0);
      expect(Buffer.compare(zlib.inflateSync(dst.subarray(0, n)), page)).toBe(0);
    }), { seed: FC_SEED, numRuns: 150 });
    d.close();
  });

  it.each([1, 6, 9])('deflates at level %i in both engines to streams that inflate to the page', (level) => {
    const page = textPage(level);
    for (const e of gzipEngines()) {
      const d = openPageDeflater(level, e);
      const dst = new Uint8Array(PAGE);
      const n = d.deflate(page, dst);
      d.close();
      expect(n, e).toBeGreaterThan(0);
      expect(Buffer.compare(zlib.inflateSync(dst.subarray(0, n)), page), e).toBe(0);
    }
  });

  it('the native batch gives each page the bytes the single-page deflater gives, on any number of threads', () => {
    const pages = Buffer.alloc(64 * PAGE);
    for (let i = 0; i < 64; i++) {
      const p = i % 4 === 0 ? incompressiblePage(i) : i % 4 === 1 ? new Uint8Array(PAGE) : textPage(i);
      pages.set(p, i * PAGE);
    }
    const single = openPageDeflater(DUMP_GZIP_DEFAULT_LEVEL);
    const want = Array.from({ length: 64 }, (_, i) => {
      const dst = new Uint8Array(PAGE);
      const n = single.deflate(pages.subarray(i * PAGE, (i + 1) * PAGE), dst);
      return n === 0 ? '' : hex(dst.subarray(0, n));
    });
    single.close();
    for (const threads of [1, 2, 5]) {
      const b = pagezipBatchDeflater(DUMP_GZIP_DEFAULT_LEVEL, threads, PAGE)!;
      const out = Buffer.alloc(64 * PAGE);
      const sizes = new Int32Array(64);
      b.start(pages, 64, out, sizes);
      b.wait();
      b.close();
      const got = Array.from({ length: 64 }, (_, i) => (sizes[i] === 0 ? '' : hex(out.subarray(i * PAGE, i * PAGE + sizes[i]))));
      expect(got, `${threads} threads`).toEqual(want);
    }
    expect(want.filter((w) => w === '').length).toBe(16);
  });

  describe.each(gzipEngines())('engine %s', (engine) => {
    it('inflates node:zlib deflateSync output', () => {
      const inf = openPageInflater(engine);
      const out = new Uint8Array(PAGE);
      for (const level of [1, 6, 9]) {
        const page = textPage(level);
        expect(inf.inflate(zlib.deflateSync(page, { level }), out)).toBe(PAGE);
        expect(Buffer.compare(out, page)).toBe(0);
      }
      inf.close();
    });

    it('declines a random page (0) and stops within page - 1 bytes', () => {
      const d = openPageDeflater(1, engine);
      // Exactly page - 1 bytes of room: the deflater must not write past it.
      const dst = new Uint8Array(PAGE);
      dst[PAGE - 1] = 0xa5;
      expect(d.deflate(new Uint8Array(randomBytes(PAGE)), dst.subarray(0, PAGE - 1))).toBe(0);
      expect(dst[PAGE - 1]).toBe(0xa5);
      d.close();
    });

    it('keeps working after a declined page and after a corrupt stream', () => {
      const d = openPageDeflater(1, engine);
      const inf = openPageInflater(engine);
      const dst = new Uint8Array(PAGE);
      const out = new Uint8Array(PAGE);
      const page = textPage(3);
      expect(d.deflate(new Uint8Array(randomBytes(PAGE)), dst)).toBe(0);
      const n = d.deflate(page, dst);
      expect(n).toBeGreaterThan(0);
      expect(() => inf.inflate(bytes('78 01 ff ff ff'), out)).toThrow(CorruptDumpError);
      expect(inf.inflate(dst.subarray(0, n), out)).toBe(PAGE);
      expect(Buffer.compare(out, page)).toBe(0);
      d.close();
      inf.close();
    });

    it('throws CorruptDumpError on corrupt, truncated, trailing and oversized streams', () => {
      const inf = openPageInflater(engine);
      const page = textPage(1);
      const z = zlib.deflateSync(page);
      const out = new Uint8Array(PAGE);
      expect(() => inf.inflate(bytes('01 02 03 04'), out)).toThrow(/incorrect header check/);
      expect(() => inf.inflate(z.subarray(0, z.length - 2), out)).toThrow(CorruptDumpError);
      expect(() => inf.inflate(Buffer.concat([z, Buffer.of(0)]), out)).toThrow(/trailing data/);
      expect(() => inf.inflate(z, new Uint8Array(PAGE - 1))).toThrow(/output overflow/);
      // A flipped bit in the Adler-32 trailer.
      const bad = Buffer.from(z);
      bad[bad.length - 1] ^= 1;
      expect(() => inf.inflate(bad, out)).toThrow(/incorrect data check/);
      // A raw gzip (.gz) member is not what LKCD stores.
      expect(() => inf.inflate(zlib.gzipSync(page), out)).toThrow(CorruptDumpError);
      expect(inf.inflate(z, out)).toBe(PAGE);
      inf.close();
    });

    it('treats use after close() as a bug', () => {
      const d = openPageDeflater(1, engine);
      d.close();
      expect(() => d.deflate(textPage(1), new Uint8Array(PAGE))).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
      const inf = openPageInflater(engine);
      inf.close();
      expect(() => inf.inflate(bytes('78 9c'), new Uint8Array(PAGE))).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    });
  });

  it('rejects levels outside 0..9 as a usage error', () => {
    for (const level of [-1, 10, 1.5]) {
      expect(() => openPageDeflater(level)).toThrow(expect.objectContaining({ code: 'USAGE' }));
      expect(() => makePageCodec(DUMP_COMPRESS_GZIP, { level })).toThrow(expect.objectContaining({ code: 'USAGE' }));
    }
  });

  needs(PYTHON).it('cross-check: python zlib.decompress of our pages gives the pages back', () => {
    const d = openPageDeflater(DUMP_GZIP_DEFAULT_LEVEL);
    const pages = [textPage(7), new Uint8Array(PAGE), Uint8Array.from({ length: PAGE }, (_, i) => (i * 7) & 0x3f)];
    const records: Buffer[] = [];
    for (const page of pages) {
      const dst = new Uint8Array(PAGE);
      const n = d.deflate(page, dst);
      expect(n).toBeGreaterThan(0);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(n);
      records.push(len, Buffer.from(dst.subarray(0, n)));
    }
    d.close();
    const script = [
      'import sys, struct, zlib',
      'data = sys.stdin.buffer.read(); at = 0',
      'while at < len(data):',
      '    (n,) = struct.unpack_from("<I", data, at); at += 4',
      '    sys.stdout.buffer.write(zlib.decompress(data[at:at + n])); at += n',
    ].join('\n');
    const out = execFileSync(PYTHON, ['-c', script], { input: Buffer.concat(records) });
    expect(out.length).toBe(pages.length * PAGE);
    pages.forEach((page, i) => expect(Buffer.compare(out.subarray(i * PAGE, (i + 1) * PAGE), page)).toBe(0));
  });
});

describe('the per-page rule (dump_lcrash_add_data / crash cache_page)', () => {
  const ALL: DumpCompress[] = [DUMP_COMPRESS_NONE, DUMP_COMPRESS_RLE, DUMP_COMPRESS_GZIP];

  it('has the kernel header values', () => {
    expect([DUMP_COMPRESS_NONE, DUMP_COMPRESS_RLE, DUMP_COMPRESS_GZIP]).toEqual([0, 1, 2]);
    expect([DUMP_DH_RAW, DUMP_DH_COMPRESSED, DUMP_DH_END]).toEqual([0x1, 0x2, 0x4]);
    expect(DUMP_GZIP_DEFAULT_LEVEL).toBe(1);
  });

  describe.each(ALL)('compression %i', (compress) => {
    it('round-trips structured, zero and random pages through encode and decode', () => {
      const codec = makePageCodec(compress);
      const scratch = new Uint8Array(PAGE);
      const out = new Uint8Array(PAGE);
      fc.assert(fc.property(fc.oneof(structuredPageArb, randomPageArb, fc.constant(new Uint8Array(PAGE))), (page) => {
        const e = codec.encode(page, scratch);
        expect(e.size).toBe(e.data.length);
        if (e.flags === DUMP_DH_COMPRESSED) {
          expect(compress).not.toBe(DUMP_COMPRESS_NONE);
          expect(e.size).toBeGreaterThan(0);
          expect(e.size).toBeLessThan(PAGE);
        } else {
          expect(e.flags).toBe(DUMP_DH_RAW);
          expect(e.size).toBe(PAGE);
          expect(e.data).toBe(page);
        }
        out.fill(0x5a);
        codec.decode(e.flags, e.data, out);
        expect(Buffer.compare(out, page)).toBe(0);
        // The free function decodes the same record.
        out.fill(0x5a);
        decodePage(e.flags, e.data, compress, out);
        expect(Buffer.compare(out, page)).toBe(0);
      }), { seed: FC_SEED, numRuns: 80 });
      codec.close();
    });

    it('stores a random page raw', () => {
      const codec = makePageCodec(compress);
      const page = new Uint8Array(randomBytes(PAGE));
      const e = codec.encode(page, new Uint8Array(PAGE));
      expect({ flags: e.flags, size: e.size }).toEqual({ flags: DUMP_DH_RAW, size: PAGE });
      codec.close();
    });

    it('reads RAW dp_size 0 as a zero page, and RAW dp_size 100 as corrupt', () => {
      const out = new Uint8Array(PAGE).fill(1);
      decodePage(DUMP_DH_RAW, new Uint8Array(0), compress, out);
      expect(out.every((b) => b === 0)).toBe(true);
      expect(() => decodePage(DUMP_DH_RAW, new Uint8Array(100), compress, out))
        .toThrow(/invalid DUMP_DH_RAW dp_size 100/);
      expect(() => decodePage(DUMP_DH_RAW, new Uint8Array(100), compress, out)).toThrow(CorruptDumpError);
    });

    it('rejects records that are not pages', () => {
      const out = new Uint8Array(PAGE);
      expect(() => decodePage(0, new Uint8Array(PAGE), compress, out)).toThrow(/neither DUMP_DH_RAW nor DUMP_DH_COMPRESSED/);
      expect(() => decodePage(DUMP_DH_END, new Uint8Array(0), compress, out)).toThrow(CorruptDumpError);
    });
  });

  it('never compresses with NONE', () => {
    const codec = makePageCodec(DUMP_COMPRESS_NONE);
    const page = new Uint8Array(PAGE);
    expect(codec.encode(page, new Uint8Array(PAGE))).toEqual({ flags: DUMP_DH_RAW, size: PAGE, data: page });
  });

  it('compresses a zero page with RLE to 48 bytes', () => {
    const e = makePageCodec(DUMP_COMPRESS_RLE).encode(new Uint8Array(PAGE), new Uint8Array(PAGE));
    expect({ flags: e.flags, size: e.size, hex: hex(e.data) }).toEqual({ flags: DUMP_DH_COMPRESSED, size: 48, hex: '00ff00'.repeat(16) });
  });

  it('rejects COMPRESSED in a dump without compression', () => {
    expect(() => decodePage(DUMP_DH_COMPRESSED, bytes('00ff00'), DUMP_COMPRESS_NONE, new Uint8Array(PAGE)))
      .toThrow(CorruptDumpError);
    expect(() => decodePage(DUMP_DH_COMPRESSED, bytes('00ff00'), DUMP_COMPRESS_NONE, new Uint8Array(PAGE)))
      .toThrow(/DUMP_DH_COMPRESSED but the dump's compression is none/);
  });

  it('rejects a truncated RLE escape', () => {
    const err = catchError(() => decodePage(DUMP_DH_COMPRESSED, bytes('00ff00 00'), DUMP_COMPRESS_RLE, new Uint8Array(PAGE)));
    expect(err).toBeInstanceOf(CorruptDumpError);
    expect(err.message).toMatch(/rle page does not decompress: RLE data ends inside an escape/);
    expect(err.where).toMatchObject({ struct: 'dump_page', field: 'dp_size' });
  });

  it('names the produced size when a page decompresses short', () => {
    expect(() => decodePage(DUMP_DH_COMPRESSED, bytes('00ff00'), DUMP_COMPRESS_RLE, new Uint8Array(PAGE)))
      .toThrow('rle page decompresses to 256 bytes, expected the page size 4096');
    const short = zlib.deflateSync(new Uint8Array(100));
    expect(() => decodePage(DUMP_DH_COMPRESSED, short, DUMP_COMPRESS_GZIP, new Uint8Array(PAGE)))
      .toThrow('gzip page decompresses to 100 bytes, expected the page size 4096');
    const codec = makePageCodec(DUMP_COMPRESS_GZIP);
    expect(() => codec.decode(DUMP_DH_COMPRESSED, short, new Uint8Array(PAGE))).toThrow(CorruptDumpError);
    codec.close();
  });

  it('rejects a gzip page that inflates past the page size', () => {
    const long = zlib.deflateSync(new Uint8Array(PAGE + 1));
    const err = catchError(() => decodePage(DUMP_DH_COMPRESSED, long, DUMP_COMPRESS_GZIP, new Uint8Array(PAGE)));
    expect(err).toBeInstanceOf(CorruptDumpError);
    expect(err.message).toMatch(/gzip page does not decompress: .*output overflow/);
  });

  it('rejects a compressed dp_size larger than the page', () => {
    expect(() => decodePage(DUMP_DH_COMPRESSED, new Uint8Array(PAGE + 1), DUMP_COMPRESS_RLE, new Uint8Array(PAGE)))
      .toThrow(/compressed dp_size 4097 exceeds page size 4096/);
  });

  it('reports an unknown compression as UNSUPPORTED', () => {
    const err = catchError(() => decodePage(DUMP_DH_RAW, new Uint8Array(PAGE), 3 as DumpCompress, new Uint8Array(PAGE)));
    expect(err.code).toBe('UNSUPPORTED');
    expect(() => makePageCodec(7 as DumpCompress)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED' }));
  });

  it('works for other page sizes', () => {
    for (const size of [512, 8192, 16384]) {
      for (const compress of [DUMP_COMPRESS_RLE, DUMP_COMPRESS_GZIP] as const) {
        const codec = makePageCodec(compress);
        const page = new Uint8Array(size);
        page.set(textPage(size).subarray(0, Math.min(size / 2, 2000)));
        const e = codec.encode(page, new Uint8Array(size));
        expect(e.flags).toBe(DUMP_DH_COMPRESSED);
        const out = new Uint8Array(size);
        codec.decode(e.flags, e.data, out);
        expect(Buffer.compare(out, page)).toBe(0);
        codec.close();
      }
    }
  });

  it('treats a closed codec and a short scratch buffer as bugs', () => {
    const codec = makePageCodec(DUMP_COMPRESS_GZIP);
    expect(() => codec.encode(textPage(1), new Uint8Array(10))).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
    codec.close();
    expect(() => codec.encode(textPage(1), new Uint8Array(PAGE))).toThrow(expect.objectContaining({ code: 'INTERNAL' }));
  });
});

function catchError(fn: () => unknown): DumpError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DumpError);
    return err as DumpError;
  }
  throw new Error('expected a throw');
}
