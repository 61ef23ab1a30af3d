import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { EncodedPage, PageCodec } from '../codecs/index.js';
import { DUMP_GZIP_DEFAULT_LEVEL, type DumpCompress } from '../codecs/index.js';
import {
  COUNT, META_INTS, PAGE_BYTES, STATE, STATE_DONE, STATE_QUIT, STATE_WORK, WORKER_BATCH, metaIndexFlags, metaIndexSize,
} from './compress_shared.js';

/**
 * How long the panic path waits for the worker's half of a batch (a few
 * milliseconds of work) before it takes the work back: a worker that died
 * or stalls never hangs a crash.
 */
export const WORKER_WAIT_MS = 5000;

/** The compiled worker: beside this file once built, or under dist/ when this runs from the TypeScript source. */
function workerFile(): string | null {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const beside = path.join(here, 'compress_worker.js');
  if (fs.existsSync(beside)) return beside;
  const fromSrc = path.join(here, '..', '..', '..', 'dist', 'src', 'dump', 'writer', 'compress_worker.js');
  return fs.existsSync(fromSrc) ? fromSrc : null;
}

/**
 * Compresses batches of pages on two cores: a worker thread takes half of
 * each batch through shared memory while this thread does the other half.
 * Results come back in page order, byte for byte what one codec would
 * give, so the dump does not depend on the thread that compressed a page.
 * Falls back to one thread when no worker can be started, and for good
 * when the worker fails or does not answer within its bound.
 */
export class ParallelPageCodec {
  private worker: Worker | null = null;
  /** Set when the worker was given up on part-way (it died or stalled). */
  lostWorker = false;
  private readonly waitMs: number;
  private readonly meta: Int32Array;
  private readonly input: Uint8Array;
  private readonly output: Uint8Array;
  private readonly scratch: Uint8Array[];

  constructor(private readonly codec: PageCodec, compress: DumpCompress, opts: { waitMs?: number } = {}) {
    this.waitMs = opts.waitMs ?? WORKER_WAIT_MS;
    const metaBuf = new SharedArrayBuffer(META_INTS * 4);
    const inBuf = new SharedArrayBuffer(WORKER_BATCH * PAGE_BYTES);
    const outBuf = new SharedArrayBuffer(WORKER_BATCH * PAGE_BYTES);
    this.meta = new Int32Array(metaBuf);
    this.input = new Uint8Array(inBuf);
    this.output = new Uint8Array(outBuf);
    this.scratch = Array.from({ length: WORKER_BATCH * 2 }, () => new Uint8Array(PAGE_BYTES));
    const file = process.env.LKCD_SINGLE_THREAD === '1' ? null : workerFile();
    if (file) {
      try {
        this.worker = new Worker(file, { workerData: { compress, level: DUMP_GZIP_DEFAULT_LEVEL, input: inBuf, output: outBuf, meta: metaBuf } });
        this.worker.unref();
      } catch {
        this.worker = null;
      }
    }
  }

  get threads(): number { return this.worker ? 2 : 1; }

  /**
   * Encodes `pages` (each one page, at most 2 x WORKER_BATCH of them).
   * The returned data views stay valid until the next call.
   */
  encodeBatch(pages: Uint8Array[]): EncodedPage[] {
    if (!this.worker || pages.length < 4) return pages.map((p, i) => this.codec.encode(p, this.scratch[i]));
    const half = Math.min(WORKER_BATCH, pages.length >> 1);
    const theirs = pages.slice(pages.length - half);
    theirs.forEach((p, i) => this.input.set(p, i * PAGE_BYTES));
    this.meta[COUNT] = half;
    Atomics.store(this.meta, STATE, STATE_WORK);
    Atomics.notify(this.meta, STATE);
    const mine = pages.slice(0, pages.length - half).map((p, i) => this.codec.encode(p, this.scratch[i]));
    Atomics.wait(this.meta, STATE, STATE_WORK, this.waitMs);
    if (Atomics.load(this.meta, STATE) !== STATE_DONE) {
      // Dead (it said so) or silent past the bound: its half is done here, and every later batch too.
      this.lostWorker = true;
      this.close();
      return [...mine, ...theirs.map((p, i) => this.codec.encode(p, this.scratch[WORKER_BATCH + i]))];
    }
    const rest = theirs.map((p, i) => {
      const size = this.meta[metaIndexSize(i)];
      const flags = this.meta[metaIndexFlags(i)];
      const dst = this.scratch[WORKER_BATCH + i];
      dst.set(this.output.subarray(i * PAGE_BYTES, i * PAGE_BYTES + size));
      return size === p.length ? { flags, size, data: p } : { flags, size, data: dst.subarray(0, size) };
    });
    return [...mine, ...rest];
  }

  close(): void {
    if (this.worker) {
      Atomics.store(this.meta, STATE, STATE_QUIT);
      Atomics.notify(this.meta, STATE);
      void this.worker.terminate();
      this.worker = null;
    }
  }
}
