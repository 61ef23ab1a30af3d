import fs from 'node:fs';
import nodePath from 'node:path';
import { DumpError, ioError, UsageError, FaultError } from '../codec/index.js';
import { PAGE_SHIFT, PAGE_SIZE } from './constants.js';
import {
  journalPathOf, ownsJournal, recoverAbandonedStep, replacedPathOf, rollBackJournal, UndoJournal,
} from './journal.js';

/** Bytes per cached chunk, and how many chunks may be cached at once. */
const CHUNK_SHIFT = 18;
const CHUNK_SIZE = 1 << CHUNK_SHIFT;
const DEFAULT_MAX_CHUNKS = 64; // 16 MiB, whatever the size of RAM

interface Chunk { data: Buffer; dirty: boolean }

export interface RamOpenOptions {
  maxChunks?: number;
  readOnly?: boolean;
  /**
   * Keep an undo journal (`<path>.journal`) so that the changes made since
   * the last commit can be rolled back if the process dies (default true
   * for a writable image).
   */
  journal?: boolean;
}

/** The step a writable image runs: its journal, and which pages it already holds originals of. */
interface Step {
  journal: UndoJournal;
  /** One bit per page: its original is in the journal. */
  saved: Uint8Array;
  /** The image was created in this step (a cold power-on): rollback discards it whole, no page needs saving. */
  fresh: boolean;
}

/**
 * Physical RAM: a file whose byte offset is the physical address. Reads and
 * writes go through a bounded write-back cache of 256 KiB chunks, so the Node
 * heap never holds more than a fixed amount of RAM whatever its size. Whole
 * chunks that are not cached are read and written straight through.
 *
 * A writable image runs one step of the machine at a time (see journal.ts):
 * the original of every page is appended to the undo journal before the
 * page first changes on disk, and `commit()` (or `close()`) makes the
 * step's changes permanent. A process killed before then leaves the image
 * to be rolled back by the next one that opens it.
 */
export class PhysicalRam {
  private readonly chunks = new Map<number, Chunk>();
  private readonly u64Scratch = Buffer.alloc(8);
  private step: Step | null = null;
  /** Originals of a range read from the file (saveOriginals): one buffer, reused, not one a write. */
  private originals: Buffer | null = null;
  /** The journal's record buffer, shared by the steps this image runs one after another. */
  private journalPending: Buffer | null = null;
  /** `size` as a number, for the number-addressed paths. */
  private readonly sizeNumber: number;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly size: bigint,
    private readonly maxChunks: number,
    /** Opened for writing: the image runs a step of the machine. */
    readonly writable: boolean,
  ) {
    this.sizeNumber = Number(size);
  }

  /** Closed (or let go of by detach): nothing more is read or written through it. */
  get isClosed(): boolean { return this.closed; }

  private get journalPath(): string { return journalPathOf(this.path); }

  /** Starts (or, in this process, joins) the step this image's changes belong to. */
  private beginStep(fresh: boolean): void {
    const st = fs.fstatSync(this.fd, { bigint: true });
    const pending = (this.journalPending ??= UndoJournal.pendingBuffer());
    const journal = ownsJournal(this.journalPath)
      ? UndoJournal.join(this.journalPath, pending)
      : UndoJournal.begin(this.journalPath, { dev: st.dev, ino: st.ino }, pending);
    this.step = { journal, saved: new Uint8Array(Math.ceil(Number(this.size >> BigInt(PAGE_SHIFT)) / 8)), fresh };
  }

  /**
   * Opens an existing RAM image, checking that it is exactly `expectedSize`
   * bytes. A step some dead process left unfinished on it is rolled back
   * first; writable, the image starts a step of its own.
   */
  static open(path: string, expectedSize: bigint, opts: RamOpenOptions = {}): PhysicalRam {
    const journaled = !opts.readOnly && opts.journal !== false;
    if (fs.existsSync(journalPathOf(path))) recoverAbandonedStep(path);
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
    const ram = new PhysicalRam(path, fd, expectedSize, opts.maxChunks ?? DEFAULT_MAX_CHUNKS, !opts.readOnly);
    if (journaled) {
      try {
        ram.beginStep(false);
      } catch (e) {
        fs.closeSync(fd);
        throw e;
      }
    }
    return ram;
  }

  /**
   * Creates cleared RAM: a new sparse file of `size` bytes (a cold power-on).
   * Any previous image at `path` is replaced; journaled (the default), the
   * previous image is moved aside and comes back if the step never commits.
   */
  static create(path: string, size: bigint, opts: { maxChunks?: number; journal?: boolean } = {}): PhysicalRam {
    if (size % BigInt(PAGE_SIZE) !== 0n) throw new UsageError(`RAM size ${size} is not a multiple of the page size`);
    const journaled = opts.journal !== false;
    let journal: UndoJournal | null = null;
    if (journaled) {
      const jfile = journalPathOf(path);
      if (fs.existsSync(jfile)) recoverAbandonedStep(path);
      const moved = replacedPathOf(path);
      let old: fs.BigIntStats | null = null;
      try { old = fs.statSync(path, { bigint: true }); } catch { /* no image yet */ }
      journal = ownsJournal(jfile) ? UndoJournal.join(jfile) : UndoJournal.begin(jfile, { dev: old?.dev ?? 0n, ino: old?.ino ?? 0n });
      try {
        // The first replacement of the step keeps the original aside; a later one replaces what the step made.
        if (!fs.existsSync(moved)) {
          journal.ramReplaced(old ? nodePath.basename(moved) : '');
          if (old) fs.renameSync(path, moved);
        }
      } catch (e) {
        journal.close();
        throw ioError('replacing RAM image', e as NodeJS.ErrnoException);
      }
    }
    let fd: number;
    try {
      fd = fs.openSync(path, 'w+', 0o600);
      fs.ftruncateSync(fd, Number(size));
    } catch (e) {
      journal?.close();
      throw ioError('creating RAM image', e as NodeJS.ErrnoException);
    }
    const ram = new PhysicalRam(path, fd, size, opts.maxChunks ?? DEFAULT_MAX_CHUNKS, true);
    if (journal) ram.step = { journal, saved: new Uint8Array(0), fresh: true };
    return ram;
  }

  /**
   * Keeps the originals of the pages in [pos, pos + n) not yet kept in this
   * step, taking them from `chunk` (the cached chunk holding the range) or
   * from the file.
   */
  private saveOriginals(pos: number, n: number, chunk: Chunk | null): void {
    const step = this.step;
    if (!step || step.fresh) return;
    const first = pos >>> PAGE_SHIFT;
    const last = (pos + n - 1) >>> PAGE_SHIFT;
    // Without a cached chunk, the originals come from the file in one read of the whole range (at
    // most a chunk: writes are split by chunk), into a buffer kept for it: the journal copies them.
    let originals: Buffer | null = null;
    for (let p = first; p <= last; p++) {
      const bit = 1 << (p & 7);
      if (step.saved[p >>> 3] & bit) continue;
      step.saved[p >>> 3] |= bit;
      const at = p * PAGE_SIZE;
      if (chunk) {
        const within = at - Math.floor(at / CHUNK_SIZE) * CHUNK_SIZE;
        step.journal.ramPage(at, chunk.data.subarray(within, within + PAGE_SIZE));
      } else {
        if (!originals) {
          const len = (last - p + 1) * PAGE_SIZE;
          if (!this.originals || this.originals.length < len) this.originals = Buffer.allocUnsafe(Math.max(len, CHUNK_SIZE));
          originals = this.originals.subarray(0, len);
          this.preadFully(originals, at);
        }
        const from = at - (last + 1) * PAGE_SIZE + originals.length;
        step.journal.ramPage(at, originals.subarray(from, from + PAGE_SIZE));
      }
    }
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
    // The least recently used chunk makes room, and its buffer is reused: the cache's memory
    // is maxChunks buffers, allocated once, not a new buffer per load left to the collector.
    let data: Buffer | null = null;
    if (this.chunks.size >= this.maxChunks) {
      const [oldest, old] = this.chunks.entries().next().value as [number, Chunk];
      if (old.dirty) this.writeBack(oldest, old);
      this.chunks.delete(oldest);
      data = old.data;
    }
    data ??= Buffer.allocUnsafe(CHUNK_SIZE);
    this.preadFully(data, index * CHUNK_SIZE);
    c = { data, dirty: false };
    this.chunks.set(index, c);
    return c;
  }

  /** Writes a cached chunk back, never past the end of RAM (the last chunk may be partial). */
  private writeBack(index: number, c: Chunk): void {
    this.step?.journal.flush();
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
    this.readAtUnchecked(this.check(paddr, out.length), out);
  }

  /**
   * readInto at a physical address held as a number (the per-page loops:
   * RAM is at most a few TiB, far below 2^53).
   */
  readAt(pos: number, out: Uint8Array): void {
    this.checkAt(pos, out.length);
    this.readAtUnchecked(pos, out);
  }

  private checkAt(pos: number, length: number): void {
    if (!(pos >= 0 && pos + length <= this.sizeNumber) || !Number.isSafeInteger(pos)) this.check(BigInt(Math.trunc(pos)), length);
  }

  private readAtUnchecked(pos: number, out: Uint8Array): void {
    let done = 0;
    while (done < out.length) {
      const index = Math.floor(pos / CHUNK_SIZE);
      const within = pos - index * CHUNK_SIZE;
      const n = Math.min(CHUNK_SIZE - within, out.length - done);
      const cached = this.chunks.get(index);
      if (cached) {
        cached.data.copy(out, done, within, within + n);
      } else if (n === CHUNK_SIZE || out.length >= CHUNK_SIZE) {
        // Large reads bypass the cache so a linear walk does not evict hot chunks.
        this.preadFully(out.subarray(done, done + n), pos);
      } else {
        this.loadChunk(index).data.copy(out, done, within, within + n);
      }
      done += n;
      pos += n;
    }
  }

  /** Writes `data` at physical address `paddr`. */
  write(paddr: bigint, data: Uint8Array): void {
    this.writeAtUnchecked(this.check(paddr, data.length), data);
  }

  /** write at a physical address held as a number (see readAt). */
  writeAt(pos: number, data: Uint8Array): void {
    this.checkAt(pos, data.length);
    this.writeAtUnchecked(pos, data);
  }

  private writeAtUnchecked(pos: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) {
      const index = Math.floor(pos / CHUNK_SIZE);
      const within = pos - index * CHUNK_SIZE;
      const n = Math.min(CHUNK_SIZE - within, data.length - done);
      const cached = this.chunks.get(index);
      if (cached) {
        this.saveOriginals(pos, n, cached);
        cached.data.set(n === data.length ? data : data.subarray(done, done + n), within);
        cached.dirty = true;
      } else if (n === CHUNK_SIZE) {
        this.saveOriginals(pos, n, null);
        this.step?.journal.flush();
        this.pwriteFully(data.subarray(done, done + n), pos);
      } else {
        const c = this.loadChunk(index);
        this.saveOriginals(pos, n, c);
        c.data.set(n === data.length ? data : data.subarray(done, done + n), within);
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

  /** A u64 of at most 2^53 - 1 at a physical address held as a number (the memdev's map entries). */
  writeU64At(pos: number, value: number): void {
    const b = this.u64Scratch;
    b.writeUInt32LE(value % 0x100000000, 0);
    b.writeUInt32LE(Math.floor(value / 0x100000000), 4);
    this.writeAt(pos, b);
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

  /**
   * Ends the step: every change written back and synced, the step marked
   * complete, its journal and any image it replaced removed. The image
   * stays open and its next changes form a new step.
   */
  commit(): void {
    this.endStep(true);
  }

  private endStep(another: boolean): void {
    if (!this.writable) return;
    this.flush();
    try {
      fs.fsyncSync(this.fd);
    } catch (e) {
      throw ioError('syncing RAM image', e as NodeJS.ErrnoException);
    }
    const step = this.step;
    if (!step) return;
    step.journal.markCommitted();
    fs.rmSync(replacedPathOf(this.path), { force: true });
    step.journal.remove();
    this.step = null;
    if (another) this.beginStep(false);
  }

  /** Commits the step (see commit) and closes the image. */
  close(): void {
    if (this.closed) return;
    this.endStep(false);
    fs.closeSync(this.fd);
    this.chunks.clear();
    this.closed = true;
  }

  /**
   * Lets go of the image without committing or writing back anything: its
   * step stays open for another image of this process to finish (a cold
   * reboot replaces RAM within the step that crashed).
   */
  detach(): void {
    if (this.closed) return;
    this.step?.journal.close();
    this.step = null;
    fs.closeSync(this.fd);
    this.chunks.clear();
    this.closed = true;
  }

  /**
   * Undoes the step this image runs, as recovery would after a kill: every
   * page and hardware file back as it was when the step began.
   */
  rollBack(): void {
    const owned = this.step !== null;
    this.detach();
    if (owned && fs.existsSync(journalPathOf(this.path))) rollBackJournal(journalPathOf(this.path), this.path);
  }

  /** Number of cached chunks (for tests of the memory bound). */
  get cachedChunks(): number {
    return this.chunks.size;
  }
}

export const RAM_CHUNK_SIZE = CHUNK_SIZE;
