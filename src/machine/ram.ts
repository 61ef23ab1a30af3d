import fs from 'node:fs';
import { DumpError, ioError, UsageError, FaultError } from '../codec/index.js';
import { PAGE_SIZE } from './constants.js';

/** Bytes per cached chunk, and how many chunks may be cached at once. */
const CHUNK_SHIFT = 18;
const CHUNK_SIZE = 1 << CHUNK_SHIFT;
const DEFAULT_MAX_CHUNKS = 128; // 32 MiB, whatever the size of RAM

interface Chunk { data: Buffer; dirty: boolean }

/**
 * Physical RAM: a file whose byte offset is the physical address. Reads and
 * writes go through a bounded write-back cache of 256 KiB chunks, so the Node
 * heap never holds more than a fixed amount of RAM whatever its size. Whole
 * chunks that are not cached are read and written straight through.
 */
export class PhysicalRam {
  private readonly chunks = new Map<number, Chunk>();

  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly size: bigint,
    private readonly maxChunks: number,
  ) {}

  /** Opens an existing RAM image, checking that it is exactly `expectedSize` bytes. */
  static open(path: string, expectedSize: bigint, opts: { maxChunks?: number; readOnly?: boolean } = {}): PhysicalRam {
    let fd: number;
    try {
      fd = fs.openSync(path, opts.readOnly ? 'r' : 'r+');
    } catch (e) {
      throw ioError('opening RAM image', e as NodeJS.ErrnoException);
    }
    const actual = BigInt(fs.fstatSync(fd).size);
    if (actual !== expectedSize) {
      fs.closeSync(fd);
      throw new DumpError('CORRUPT',
        `${path}: RAM image is ${actual} bytes, the machine has ${expectedSize} (ram_bytes in state.json)`,
        { file: path });
    }
    return new PhysicalRam(path, fd, expectedSize, opts.maxChunks ?? DEFAULT_MAX_CHUNKS);
  }

  /**
   * Creates cleared RAM: a new sparse file of `size` bytes (a cold power-on).
   * Any previous image at `path` is replaced.
   */
  static create(path: string, size: bigint, opts: { maxChunks?: number } = {}): PhysicalRam {
    if (size % BigInt(PAGE_SIZE) !== 0n) throw new UsageError(`RAM size ${size} is not a multiple of the page size`);
    let fd: number;
    try {
      fd = fs.openSync(path, 'w+', 0o600);
      fs.ftruncateSync(fd, Number(size));
    } catch (e) {
      throw ioError('creating RAM image', e as NodeJS.ErrnoException);
    }
    return new PhysicalRam(path, fd, size, opts.maxChunks ?? DEFAULT_MAX_CHUNKS);
  }

  private check(paddr: bigint, length: number): number {
    if (paddr < 0n || paddr + BigInt(length) > this.size) {
      // The first byte that is not backed: the start, or the end of RAM for a read that runs off it.
      const first = paddr < 0n || paddr >= this.size ? paddr : this.size;
      throw new FaultError(`physical address 0x${first.toString(16)} is outside RAM (0x${this.size.toString(16)} bytes; access at 0x${paddr.toString(16)} +${length})`,
        { address: first, space: 'phys' });
    }
    return Number(paddr);
  }

  private loadChunk(index: number): Chunk {
    let c = this.chunks.get(index);
    if (c) {
      // Re-insert to mark as most recently used.
      this.chunks.delete(index);
      this.chunks.set(index, c);
      return c;
    }
    const data = Buffer.alloc(CHUNK_SIZE);
    this.preadFully(data, index * CHUNK_SIZE);
    c = { data, dirty: false };
    this.chunks.set(index, c);
    while (this.chunks.size > this.maxChunks) {
      const [oldest, old] = this.chunks.entries().next().value as [number, Chunk];
      if (old.dirty) this.writeBack(oldest, old);
      this.chunks.delete(oldest);
    }
    return c;
  }

  /** Writes a cached chunk back, never past the end of RAM (the last chunk may be partial). */
  private writeBack(index: number, c: Chunk): void {
    const start = index * CHUNK_SIZE;
    const len = Math.min(CHUNK_SIZE, Number(this.size) - start);
    this.pwriteFully(c.data.subarray(0, len), start);
  }

  private preadFully(buf: Uint8Array, pos: number): void {
    let done = 0;
    while (done < buf.length) {
      const n = fs.readSync(this.fd, buf, done, buf.length - done, pos + done);
      if (n === 0) { buf.fill(0, done); return; }
      done += n;
    }
  }

  private pwriteFully(buf: Uint8Array, pos: number): void {
    let done = 0;
    try {
      while (done < buf.length) done += fs.writeSync(this.fd, buf, done, buf.length - done, pos + done);
    } catch (e) {
      throw ioError('writing RAM image', e as NodeJS.ErrnoException);
    }
  }

  /** Reads `length` bytes at physical address `paddr` into a new buffer. */
  read(paddr: bigint, length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    this.readInto(paddr, out);
    return out;
  }

  readInto(paddr: bigint, out: Uint8Array): void {
    let pos = this.check(paddr, out.length);
    let done = 0;
    while (done < out.length) {
      const index = Math.floor(pos / CHUNK_SIZE);
      const within = pos - index * CHUNK_SIZE;
      const n = Math.min(CHUNK_SIZE - within, out.length - done);
      const cached = this.chunks.get(index);
      if (cached) {
        out.set(cached.data.subarray(within, within + n), done);
      } else if (n === CHUNK_SIZE || out.length >= CHUNK_SIZE) {
        // Large reads bypass the cache so a linear walk does not evict hot chunks.
        this.preadFully(out.subarray(done, done + n), pos);
      } else {
        out.set(this.loadChunk(index).data.subarray(within, within + n), done);
      }
      done += n;
      pos += n;
    }
  }

  /** Writes `data` at physical address `paddr`. */
  write(paddr: bigint, data: Uint8Array): void {
    let pos = this.check(paddr, data.length);
    let done = 0;
    while (done < data.length) {
      const index = Math.floor(pos / CHUNK_SIZE);
      const within = pos - index * CHUNK_SIZE;
      const n = Math.min(CHUNK_SIZE - within, data.length - done);
      const cached = this.chunks.get(index);
      if (cached) {
        cached.data.set(data.subarray(done, done + n), within);
        cached.dirty = true;
      } else if (n === CHUNK_SIZE) {
        this.pwriteFully(data.subarray(done, done + n), pos);
      } else {
        const c = this.loadChunk(index);
        c.data.set(data.subarray(done, done + n), within);
        c.dirty = true;
      }
      done += n;
      pos += n;
    }
  }

  /** Fills a range with zero bytes. */
  zero(paddr: bigint, length: number): void {
    const z = Buffer.alloc(Math.min(length, CHUNK_SIZE));
    let done = 0;
    while (done < length) {
      const n = Math.min(z.length, length - done);
      this.write(paddr + BigInt(done), z.subarray(0, n));
      done += n;
    }
  }

  readU64(paddr: bigint): bigint {
    return this.read(paddr, 8).readBigUInt64LE(0);
  }
  writeU64(paddr: bigint, value: bigint): void {
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, value));
    this.write(paddr, b);
  }

  /** Writes every dirty chunk back to the file. */
  flush(): void {
    for (const [index, c] of this.chunks) {
      if (c.dirty) {
        this.writeBack(index, c);
        c.dirty = false;
      }
    }
  }

  /** Flushes and fsyncs: the image on disk then equals RAM. */
  sync(): void {
    this.flush();
    fs.fsyncSync(this.fd);
  }

  close(): void {
    this.flush();
    fs.closeSync(this.fd);
    this.chunks.clear();
  }

  /** Number of cached chunks (for tests of the memory bound). */
  get cachedChunks(): number {
    return this.chunks.size;
  }
}

export const RAM_CHUNK_SIZE = CHUNK_SIZE;
