/**
 * The dump on the device, read once: a DumpSource over [start, end) of the
 * dump device that writes what the reader reads to dump.N as it goes, and
 * hashes it, so one front-to-back pass copies, hashes and (through the
 * LKCD reader's walk, whose pages inflate on native threads meanwhile)
 * verifies every record. Offsets and `path` are those of the copy, so
 * every message names dump.N and its offsets, as when the copy was read
 * back.
 *
 * The copy only ever grows in order. A read that starts at or before its
 * end takes what is already copied from the copy and the rest from the
 * device, appending that rest (a small gap before it, such as the header
 * buffer's tail before the first record, is copied first). A read far
 * ahead (the extension area at the end, read before the walk) is served
 * from the device and remembered by CRC32: finish() copies what is left,
 * fsyncs, and checks each such range against the copy, so every byte the
 * reader saw is a byte of dump.N. After finish() every read comes from
 * the copy.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import zlib from 'node:zlib';
import { DumpError, InternalError, hex, ioError } from '../src/codec/index.js';
import { killPoint, type BlockDevice, type DeviceDump, type DumpSource } from '../src/dump/index.js';
import { progressBar } from '../src/cli/progress.js';

/** A read starting at most this far past the copy's end fills the gap first (the header buffer before the first record). */
const GAP_FILL_LIMIT = 1 << 20;
/** Copy steps of finish(), and the distance between kill points and progress updates. */
const COPY_CHUNK = 4 << 20;

/** Options of the copy: a fault that makes writes fail with ENOSPC past a byte count (the fault matrix). */
export interface CopyOptions {
  enospcAfter?: number | null;
}

export class CopyingSource implements DumpSource {
  readonly base = 0n;
  /** The copy's size in bytes, a safe integer. */
  private readonly total: number;
  private readonly hash = crypto.createHash('sha256');
  private readonly bar = progressBar('lkcd save: copy');
  /** Bytes of the copy written, from 0. */
  private copied = 0;
  private nextKill = COPY_CHUNK;
  /** Ranges served from the device ahead of the copy, checked against it by finish(). */
  private readonly ahead: Array<{ pos: number; len: number; crc: number }> = [];
  private scratch: Buffer | null = null;
  private sha: string | null = null;
  private closed = false;

  private constructor(
    private readonly dev: BlockDevice,
    private readonly start: bigint,
    readonly size: bigint,
    /** The copy's path: what messages name. */
    readonly path: string,
    private readonly fd: number,
    private readonly opts: CopyOptions,
  ) {
    this.total = Number(size);
  }

  /** Creates `file` (0600, it must not exist) for the copy of the dump at [d.start, d.end) of `dev`. */
  static open(dev: BlockDevice, d: Pick<DeviceDump, 'start' | 'end'>, file: string, opts: CopyOptions = {}): CopyingSource {
    const size = d.end - d.start;
    if (size < 0n || size > BigInt(Number.MAX_SAFE_INTEGER)) throw new InternalError(`device dump extent ${d.start}..${d.end} is not a byte range`);
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx+', 0o600);
    } catch (e) {
      throw ioError('creating the copy of the dump', e as NodeJS.ErrnoException);
    }
    return new CopyingSource(dev, d.start, size, file, fd, opts);
  }

  readAt(out: Uint8Array, position: bigint): number {
    this.live();
    if (position < 0n || position >= this.size) return 0;
    const pos = Number(position);
    const want = Math.min(out.length, this.total - pos);
    const buf = out.subarray(0, want);
    if (pos - this.copied > GAP_FILL_LIMIT) {
      // Far ahead of the copy: from the device, checked against the copy once it gets there.
      this.readDevice(pos, buf);
      this.ahead.push({ pos, len: want, crc: zlib.crc32(buf) >>> 0 });
      return want;
    }
    if (pos > this.copied) this.fill(pos);
    const have = Math.min(want, this.copied - pos);
    if (have > 0) this.readCopy(buf.subarray(0, have), pos);
    if (have < want) {
      const rest = buf.subarray(have);
      this.readDevice(this.copied, rest);
      this.append(rest);
    }
    return want;
  }

  /**
   * Copies what the reads left, checks every range read ahead of the copy
   * against it, and returns the sha256 of dump.N (of the bytes written,
   * not read back). sync() makes the copy durable.
   */
  finish(): string {
    this.live();
    if (this.sha !== null) return this.sha;
    this.fill(this.total);
    // One kill point per COPY_CHUNK copied, the last partial one included.
    if (this.total % COPY_CHUNK !== 0) killPoint('save copy');
    this.bar.end();
    for (const r of this.ahead) {
      const b = Buffer.allocUnsafe(r.len);
      this.readCopy(b, r.pos);
      const crc = zlib.crc32(b) >>> 0;
      if (crc !== r.crc) {
        throw new DumpError('IO', `${this.path}: the dump device changed while it was being saved (${r.len} bytes at offset ${hex(r.pos)} differ from what was read)`, { file: this.path, offset: BigInt(r.pos) });
      }
    }
    this.ahead.length = 0;
    this.scratch = null;
    this.sha = this.hash.digest('hex');
    return this.sha;
  }

  /** fsyncs the finished copy: called as late as possible before it is renamed into place, so writeback has run meanwhile. */
  sync(): void {
    this.live();
    if (this.sha === null) throw new InternalError(`${this.path}: sync() before finish()`);
    try {
      fs.fsyncSync(this.fd);
    } catch (e) {
      throw ioError('copying the dump', Object.assign(e as NodeJS.ErrnoException, { path: this.path }));
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.bar.end();
    fs.closeSync(this.fd);
  }

  private live(): void {
    if (this.closed) throw new InternalError(`${this.path}: the copying source was used after close()`);
  }

  /** Fills `b` from the device at copy offset `pos`. */
  private readDevice(pos: number, b: Uint8Array): void {
    try {
      this.dev.readInto(this.start + BigInt(pos), b);
    } catch (e) {
      throw e instanceof DumpError ? e : ioError('reading the dump device', Object.assign(e as NodeJS.ErrnoException, { path: this.dev.path }));
    }
  }

  /** Copies from the device up to `to`. */
  private fill(to: number): void {
    while (this.copied < to) {
      const n = Math.min(COPY_CHUNK, to - this.copied);
      if (!this.scratch || this.scratch.length < n) this.scratch = Buffer.allocUnsafe(Math.max(n, GAP_FILL_LIMIT));
      const b = this.scratch.subarray(0, n);
      this.readDevice(this.copied, b);
      this.append(b);
    }
  }

  /** Writes `b` at the copy's end and hashes it. */
  private append(b: Uint8Array): void {
    const limit = this.opts.enospcAfter;
    try {
      if (limit != null && this.copied + b.length > limit) {
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
      }
      let done = 0;
      while (done < b.length) done += fs.writeSync(this.fd, b, done, b.length - done, this.copied + done);
    } catch (e) {
      throw ioError('copying the dump', Object.assign(e as NodeJS.ErrnoException, { path: this.path }));
    }
    this.hash.update(b);
    this.copied += b.length;
    this.bar(BigInt(this.copied), this.size);
    if (this.copied >= this.nextKill) {
      this.nextKill += COPY_CHUNK;
      killPoint('save copy');
    }
  }

  private readCopy(b: Uint8Array, pos: number): void {
    let done = 0;
    try {
      while (done < b.length) {
        const n = fs.readSync(this.fd, b, done, b.length - done, pos + done);
        if (n === 0) throw Object.assign(new Error('EIO: the copy is shorter than what was written'), { code: 'EIO' });
        done += n;
      }
    } catch (e) {
      throw ioError(`reading the copy of the dump at offset ${hex(pos + done)}`, Object.assign(e as NodeJS.ErrnoException, { path: this.path }));
    }
  }
}
