import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { findTool, needs } from '../../helpers/tools.js';
import {
  CONTENT_CLASSES, ContentGenerator, PAGE_CACHE_DIRS, type ContentClass,
} from '../../../src/kernel/workload/content.js';
import { ELF_SECTION_MAX_BYTES, findKernelTextElf, kernelTextElfCandidates } from '../../../src/kernel/workload/elf_text.js';

const PAGE = 4096;
const NONZERO = CONTENT_CLASSES.filter((c) => c !== 'zero');
// A smaller pool keeps most tests fast; the ratio test uses the default size.
const SMALL_POOL = 1 << 20;

function pages(gen: ContentGenerator, cls: ContentClass, pfn: bigint, count: number): Uint8Array {
  const out = new Uint8Array(count * PAGE);
  gen.fill(cls, pfn, out);
  return out;
}

/** zlib level 1, one 4 KiB page at a time, as the panic-time compressor works. */
function ratio(bytes: Uint8Array): number {
  let packed = 0;
  for (let at = 0; at < bytes.length; at += PAGE) packed += deflateSync(bytes.subarray(at, at + PAGE), { level: 1 }).length;
  return bytes.length / packed;
}

describe('ContentGenerator', () => {
  const a = new ContentGenerator({ seed: 7, poolBytes: SMALL_POOL });
  const b = new ContentGenerator({ seed: 7, poolBytes: SMALL_POOL });
  const other = new ContentGenerator({ seed: 8, poolBytes: SMALL_POOL });

  it.each(CONTENT_CLASSES)('%s: the same seed gives identical bytes', (cls) => {
    expect(Buffer.from(pages(a, cls, 0x12345n, 32)).equals(pages(b, cls, 0x12345n, 32))).toBe(true);
  });

  it.each(NONZERO)('%s: a different seed gives different bytes', (cls) => {
    const x = pages(a, cls, 0x4000n, 16);
    const y = pages(other, cls, 0x4000n, 16);
    for (let p = 0; p < 16; p++) {
      expect(Buffer.from(x.subarray(p * PAGE, (p + 1) * PAGE)).equals(y.subarray(p * PAGE, (p + 1) * PAGE))).toBe(false);
    }
  });

  it.each(CONTENT_CLASSES)('%s: a range filled at once equals the same pages filled one by one', (cls) => {
    const whole = pages(a, cls, 0xfffffff0n, 40); // crosses the 32-bit PFN boundary
    const fresh = new ContentGenerator({ seed: 7, poolBytes: SMALL_POOL });
    for (let p = 39; p >= 0; p--) {
      expect(Buffer.from(pages(fresh, cls, 0xfffffff0n + BigInt(p), 1)).equals(whole.subarray(p * PAGE, (p + 1) * PAGE)))
        .toBe(true);
    }
  });

  it('zero pages are all zero, whatever the buffer held', () => {
    const out = new Uint8Array(8 * PAGE).fill(0xaa);
    a.fill('zero', 99n, out);
    expect(out.every((x) => x === 0)).toBe(true);
  });

  it.each(NONZERO)('%s: no two of 256 consecutive pages are equal', (cls) => {
    const bytes = pages(a, cls, 0x20000n, 256);
    const seen = new Set<string>();
    for (let p = 0; p < 256; p++) {
      seen.add(createHash('sha256').update(bytes.subarray(p * PAGE, (p + 1) * PAGE)).digest('hex'));
    }
    expect(seen.size).toBe(256);
  });

  it('pages of different classes differ', () => {
    const seen = new Set<string>();
    for (const cls of NONZERO) seen.add(createHash('sha256').update(pages(a, cls, 5n, 1)).digest('hex'));
    expect(seen.size).toBe(NONZERO.length);
  });

  it('rejects a buffer that is not a whole number of pages', () => {
    expect(() => a.fill('slab', 0n, new Uint8Array(PAGE + 1))).toThrow(/whole number of pages/);
  });

  it('rejects a seed that is not an integer', () => {
    expect(() => new ContentGenerator({ seed: 1.5 })).toThrow(/seed/);
  });

  it('names its real sources', () => {
    const { elf, files } = a.sources;
    expect(kernelTextElfCandidates()).toContain(elf);
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      expect(PAGE_CACHE_DIRS.some((d) => f.startsWith(`${d}/`))).toBe(true);
      expect(fs.lstatSync(f).isFile()).toBe(true);
    }
  });

  describe('compression ratio per 4 KiB page, zlib level 1 (default pool size)', () => {
    const gen = new ContentGenerator({ seed: 3 });
    const bands: Array<[ContentClass, number, number]> = [
      ['kernel_text', 1.1, 3],
      ['kernel_rodata', 1.1, 6],
      ['page_cache', 1.5, 8],
      ['anon_heap', 1.5, 6],
      ['slab', 1.5, 10],
      ['database', 1.5, 5],
      ['incompressible', 0.9, 1.05],
    ];
    it.each(bands)('%s stays within [%d, %d]', (cls, low, high) => {
      const r = ratio(pages(gen, cls, 0x10000n, 512));
      expect(r).toBeGreaterThan(low);
      expect(r).toBeLessThan(high);
    });
  });
});

describe('findKernelTextElf', () => {
  const elf = findKernelTextElf();

  it('finds an x86_64 ELF with non-empty .text and .rodata, at most 16 MiB each', () => {
    expect(kernelTextElfCandidates()).toContain(elf.path);
    expect(elf.text.length).toBeGreaterThan(0);
    expect(elf.rodata.length).toBeGreaterThan(0);
    expect(elf.text.length).toBeLessThanOrEqual(ELF_SECTION_MAX_BYTES);
    expect(elf.rodata.length).toBeLessThanOrEqual(ELF_SECTION_MAX_BYTES);
  });

  it('honours a smaller cap with a prefix of the same bytes', () => {
    const small = findKernelTextElf(PAGE);
    expect(small.path).toBe(elf.path);
    expect(Buffer.from(small.text).equals(elf.text.subarray(0, PAGE))).toBe(true);
  });

  // objcopy (binutils) is the reference extractor.
  needs('objcopy').it('returns the bytes objcopy extracts', () => {
    const objcopy = findTool('objcopy');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'content-elf-'));
    try {
      for (const [section, got] of [['.text', elf.text], ['.rodata', elf.rodata]] as const) {
        const out = path.join(dir, `${section.slice(1)}.bin`);
        execFileSync(objcopy!, ['-O', 'binary', `--only-section=${section}`, elf.path, out]);
        const want = fs.readFileSync(out);
        expect(got.length).toBe(Math.min(want.length, ELF_SECTION_MAX_BYTES));
        expect(Buffer.from(got).equals(want.subarray(0, got.length))).toBe(true);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
