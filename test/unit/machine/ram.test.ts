import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DumpError, FaultError } from '../../../src/codec/index.js';
import { LiveMemory, PhysicalRam, RAM_CHUNK_SIZE } from '../../../src/machine/index.js';
import { makeTempDir, removeTempDir } from '../../helpers/machine.js';

const KiB = 1024;
const MiB = 1024 * 1024;
/** The cache works in 256 KiB chunks; the boundary tests are about that size. */
const CHUNK = 256 * KiB;

let dir: string;
let seq = 0;
const open: PhysicalRam[] = [];

beforeAll(() => { dir = makeTempDir('ram'); });
// Tests that close a RAM themselves pop it from `open` right after.
afterEach(() => {
  while (open.length) open.pop()!.close();
});
afterAll(() => removeTempDir(dir));

function freshPath(): string {
  return path.join(dir, `ram-${++seq}`);
}
function create(size: number, opts: { maxChunks?: number } = {}): PhysicalRam {
  const r = PhysicalRam.create(freshPath(), BigInt(size), opts);
  open.push(r);
  return r;
}
function pattern(length: number, salt: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (i * 31 + salt * 17 + (i >> 8)) & 0xff;
  return b;
}
/** Reads the image file with plain fs, bypassing PhysicalRam. */
function fileBytes(file: string, at: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(length);
    fs.readSync(fd, b, 0, length, at);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}
function thrown(fn: () => unknown): unknown {
  try { fn(); } catch (e) { return e; }
  return undefined;
}

describe('PhysicalRam chunk boundaries', () => {
  it('the exported chunk size is 256 KiB', () => {
    expect(RAM_CHUNK_SIZE).toBe(CHUNK);
  });

  it.each([
    ['a small write across one boundary', CHUNK - 50, 100],
    ['a write ending exactly on a boundary', CHUNK - 4096, 4096],
    ['a write starting exactly on a boundary', 2 * CHUNK, 4096],
    ['a write longer than a chunk, across three chunks', CHUNK - 50, CHUNK + 100],
    ['a write of exactly one unaligned chunk', CHUNK + 7, CHUNK],
    ['a write of several whole chunks', 2 * CHUNK, 3 * CHUNK],
  ])('%s round-trips, through the cache and after reopening', (_what, at, length) => {
    const ram = create(8 * CHUNK);
    const data = pattern(length, at);
    ram.write(BigInt(at), data);
    expect(ram.read(BigInt(at), length).equals(data)).toBe(true);
    // Byte by byte around each boundary (small reads go through the cache).
    for (let b = Math.ceil(at / CHUNK) * CHUNK; b < at + length; b += CHUNK) {
      for (const p of [b - 1, b]) {
        if (p >= at && p < at + length) expect(ram.read(BigInt(p), 1)[0]).toBe(data[p - at]);
      }
    }
    // Neighbours are untouched.
    if (at > 0) expect(ram.read(BigInt(at - 1), 1)[0]).toBe(0);
    expect(ram.read(BigInt(at + length), 1)[0]).toBe(0);
    ram.close();
    open.pop();
    const again = PhysicalRam.open(ram.path, ram.size);
    open.push(again);
    expect(again.read(BigInt(at), length).equals(data)).toBe(true);
    expect(fileBytes(ram.path, at, length).equals(data)).toBe(true);
  });

  it('cached and uncached pieces of one large access stay coherent', () => {
    const ram = create(8 * CHUNK);
    // Cache chunk 1 with a small dirty write, then overwrite chunks 0..2 with a large write.
    ram.write(BigInt(CHUNK + 10), Buffer.from([1, 2, 3]));
    const big = pattern(3 * CHUNK, 9);
    ram.write(0n, big);
    // A small write into chunk 2 (not cached before), then a large read over everything.
    ram.write(BigInt(2 * CHUNK + 5), Buffer.from([0xaa, 0xbb]));
    big[2 * CHUNK + 5] = 0xaa;
    big[2 * CHUNK + 6] = 0xbb;
    expect(ram.read(0n, 3 * CHUNK).equals(big)).toBe(true);
    for (const p of [0, CHUNK - 1, CHUNK, CHUNK + 10, 2 * CHUNK + 5, 3 * CHUNK - 1]) {
      expect(ram.read(BigInt(p), 1)[0]).toBe(big[p]);
    }
    ram.flush();
    expect(fileBytes(ram.path, 0, 3 * CHUNK).equals(big)).toBe(true);
  });

  it('readU64/writeU64 across a boundary are little-endian', () => {
    const ram = create(2 * CHUNK);
    ram.writeU64(BigInt(CHUNK - 3), 0x1122334455667788n);
    expect(Array.from(ram.read(BigInt(CHUNK - 3), 8))).toEqual([0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
    expect(ram.readU64(BigInt(CHUNK - 3))).toBe(0x1122334455667788n);
  });
});

describe('PhysicalRam and its file', () => {
  it('data written then flushed is in the file', () => {
    const ram = create(4 * MiB);
    const a = pattern(300, 1);
    const b = pattern(5000, 2);
    ram.write(0x1234n, a);
    ram.write(BigInt(3 * MiB - 17), b);
    ram.flush();
    expect(fileBytes(ram.path, 0x1234, 300).equals(a)).toBe(true);
    expect(fileBytes(ram.path, 3 * MiB - 17, 5000).equals(b)).toBe(true);
    expect(fs.statSync(ram.path).size).toBe(4 * MiB);
  });

  it('touching 64 MiB of a 128 MiB RAM in small writes never caches more than maxChunks', () => {
    const size = 128 * MiB;
    const p = freshPath();
    PhysicalRam.create(p, BigInt(size)).close();
    const ram = PhysicalRam.open(p, BigInt(size), { maxChunks: 8 });
    open.push(ram);
    let most = 0;
    // 512 bytes at the start of every other 8 KiB, across the first 64 MiB of RAM... twice, the second time backwards.
    const stamp = (at: number, round: number): Buffer => {
      const b = Buffer.alloc(512, round);
      b.writeUInt32LE(at, 0);
      return b;
    };
    for (let at = 0; at < 64 * MiB; at += 8 * KiB) {
      ram.write(BigInt(at), stamp(at, 1));
      most = Math.max(most, ram.cachedChunks);
    }
    for (let at = 64 * MiB - 8 * KiB; at >= 0; at -= 16 * KiB) {
      ram.write(BigInt(at), stamp(at, 2));
      most = Math.max(most, ram.cachedChunks);
    }
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(8);
    // Evicted chunks were written back: check through the RAM and in the file.
    ram.flush();
    for (let at = 0; at < 64 * MiB; at += 8 * KiB) {
      const round = (64 * MiB - 8 * KiB - at) % (16 * KiB) === 0 ? 2 : 1;
      const want = stamp(at, round);
      expect(fileBytes(p, at, 512).equals(want)).toBe(true);
    }
    expect(ram.read(BigInt(64 * MiB), 512).every((x) => x === 0)).toBe(true);
  });

  it('create() makes a sparse file of the requested size', () => {
    const size = 128 * MiB;
    const ram = create(size);
    ram.write(BigInt(100 * MiB), pattern(4096, 3));
    ram.close();
    open.pop();
    const st = fs.statSync(ram.path);
    expect(st.size).toBe(size);
    expect(st.blocks * 512).toBeLessThan(size / 64);
  });

  it('create() replaces an existing image with cleared RAM', () => {
    const p = freshPath();
    const first = PhysicalRam.create(p, BigInt(MiB));
    first.write(0x800n, pattern(64, 4));
    first.close();
    const second = PhysicalRam.create(p, BigInt(MiB));
    open.push(second);
    expect(second.read(0x800n, 64).every((x) => x === 0)).toBe(true);
  });

  it('open() of a file of the wrong size throws a DumpError naming the file and both sizes', () => {
    const p = freshPath();
    fs.writeFileSync(p, Buffer.alloc(3 * 4096));
    const err = thrown(() => PhysicalRam.open(p, 16384n));
    expect(err).toBeInstanceOf(DumpError);
    const e = err as DumpError;
    expect(e.where.file).toBe(p);
    expect(e.message).toContain(p);
    expect(e.message).toContain('12288');
    expect(e.message).toContain('16384');
  });

  it('open() of a missing file is a NOINPUT error naming the path', () => {
    const p = path.join(dir, 'no-such-ram');
    const err = thrown(() => PhysicalRam.open(p, 4096n)) as DumpError;
    expect(err).toBeInstanceOf(DumpError);
    expect(err.code).toBe('NOINPUT');
    expect(err.message).toContain(p);
  });

  it('a RAM whose size is not a whole number of chunks keeps its size after writes near the end', () => {
    // 256 KiB + 4 KiB: page-aligned, as create() requires, but the last chunk is partial.
    const size = CHUNK + 4096;
    const ram = create(size);
    ram.write(BigInt(size - 8), Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]));
    ram.close();
    open.pop();
    expect(fs.statSync(ram.path).size).toBe(size);
    const again = PhysicalRam.open(ram.path, BigInt(size));
    open.push(again);
    expect(Array.from(again.read(BigInt(size - 8), 8))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});

describe('PhysicalRam bounds', () => {
  it.each([
    ['entirely past the end', 4 * MiB, 8],
    ['straddling the end', 4 * MiB - 4, 8],
    ['far past the end', 2 ** 40, 1],
  ])('a read %s throws FaultError', (_what, at, length) => {
    const ram = create(4 * MiB);
    const err = thrown(() => ram.read(BigInt(at), length));
    expect(err).toBeInstanceOf(FaultError);
    expect((err as FaultError).code).toBe('FAULT');
    expect((err as FaultError).where.space).toBe('phys');
    expect(thrown(() => ram.write(BigInt(at), Buffer.alloc(length)))).toBeInstanceOf(FaultError);
  });

  it('a negative address throws FaultError', () => {
    const ram = create(MiB);
    expect(thrown(() => ram.read(-8n, 8))).toBeInstanceOf(FaultError);
  });

  it('the last byte of RAM is readable', () => {
    const ram = create(MiB);
    ram.write(BigInt(MiB - 1), Buffer.from([0x42]));
    expect(ram.read(BigInt(MiB - 1), 1)[0]).toBe(0x42);
  });

  it('a physical read through the MemoryReader faults at the first missing address', () => {
    // MemoryReader.read: "throws FaultError carrying the first missing address" (src/machine/memory.ts).
    const ram = create(MiB);
    const mem = new LiveMemory(ram, 0n);
    const entirely = thrown(() => mem.read('phys', BigInt(MiB) + 0x100n, 8)) as FaultError;
    expect(entirely).toBeInstanceOf(FaultError);
    expect(entirely.where.address).toBe(BigInt(MiB) + 0x100n);
    const straddling = thrown(() => mem.read('phys', BigInt(MiB) - 4n, 8)) as FaultError;
    expect(straddling).toBeInstanceOf(FaultError);
    expect(straddling.where.address).toBe(BigInt(MiB));
  });
});
