/**
 * Stage 1's page compressor, in batches that overlap with the rest of the
 * panic path: while the native threads of the lkcd-pagezip addon deflate
 * one batch, the JavaScript thread reads the next batch's pages out of RAM
 * and stores the results of the last one. GZIP dumps with the addon loaded
 * go this way, on every core the machine has; RLE and NONE dumps, and GZIP
 * without the addon, go through ParallelPageCodec (a worker thread) with
 * the same interface, synchronously.
 *
 * The rule per page is the codecs' (page_codec.ts): a stream strictly
 * smaller than the page is DUMP_DH_COMPRESSED, anything else is RAW. The
 * addon's batch and its single-page Deflater use the same compressor, so a
 * page gives the same bytes whichever path took it.
 *
 * A slot's results are typed arrays filled in place (dp_flags, dp_size and
 * the CRC32 of the stored bytes per page), so a batch makes no object per
 * page; the CRC32 comes from the native threads with the compression.
 */
import { InternalError, UsageError } from '../../codec/index.js';
import { PAGE_SIZE } from '../../machine/index.js';
import {
  DUMP_COMPRESS_GZIP, DUMP_COMPRESS_LZ4, DUMP_DH_COMPRESSED, DUMP_DH_RAW, DUMP_GZIP_DEFAULT_LEVEL, nativeThreads, pageCrc32,
  PAGEZIP_LZ4, pagezipBatchCompressor, pagezipBatchDeflater, type BatchDeflaterHandle, type DumpCompress, type PageCodec,
} from '../codecs/index.js';
import { ParallelPageCodec } from './parallel_codec.js';
import { WORKER_BATCH } from './compress_shared.js';

/** Pages per batch: 1 MiB of input, small enough to keep the pipeline short, large enough that a call costs nothing. */
export const ENCODE_BATCH_PAGES = 256;

/**
 * One batch buffer: `count` pages read into `input`; after finish(), page
 * k's record is `flags[k]`, `sizes[k]` (dp_size) and the stored bytes at
 * k * PAGE_SIZE of `output` (compressed) or of `input` (raw), whose CRC32
 * is `crcs[k]`.
 */
export interface EncodeSlot {
  readonly input: Buffer;
  readonly output: Buffer;
  readonly flags: Uint8Array;
  readonly sizes: Int32Array;
  readonly crcs: Uint32Array;
  count: number;
}

/** The buffer holding page k's stored bytes (at k * PAGE_SIZE) after finish(). */
export function storedBuffer(s: EncodeSlot, k: number): Buffer {
  return s.flags[k] === DUMP_DH_COMPRESSED ? s.output : s.input;
}

export interface BatchEncoder {
  /** Threads compressing (1 or more), and by what. */
  readonly threads: number;
  readonly engine: string;
  /** The two slots the caller fills in turn (double buffering). */
  readonly slots: readonly [EncodeSlot, EncodeSlot];
  /** Starts encoding the pages in `slot` (slot.count of them). At most one slot runs at a time. */
  start(slot: EncodeSlot): void;
  /** Waits for `slot` and fills its results; they stay valid until the slot is started again. */
  finish(slot: EncodeSlot): void;
  close(): void;
}

function slot(): EncodeSlot {
  return {
    input: Buffer.alloc(ENCODE_BATCH_PAGES * PAGE_SIZE),
    output: Buffer.alloc(ENCODE_BATCH_PAGES * PAGE_SIZE),
    flags: new Uint8Array(ENCODE_BATCH_PAGES),
    sizes: new Int32Array(ENCODE_BATCH_PAGES),
    crcs: new Uint32Array(ENCODE_BATCH_PAGES),
    count: 0,
  };
}

/** Threads for the native batch: every core this process may use (LKCD_SINGLE_THREAD=1: one). */
export const stage1Threads = nativeThreads;

/** The native batch compressor (GZIP with the addon). */
class NativeBatchEncoder implements BatchEncoder {
  readonly slots: [EncodeSlot, EncodeSlot] = [slot(), slot()];
  readonly engine: string;
  private running: EncodeSlot | null = null;

  constructor(private readonly batch: BatchDeflaterHandle, readonly threads: number) {
    this.engine = batch.engine;
  }

  start(s: EncodeSlot): void {
    if (this.running) throw new InternalError('batch encoder: a batch is already running');
    if (!this.slots.includes(s)) throw new InternalError('batch encoder: a slot it does not own');
    // sizes[] receives the raw stream lengths (0: not strictly smaller); finish() applies the rule.
    this.batch.start(s.input, s.count, s.output, s.sizes, s.crcs);
    this.running = s;
  }

  finish(s: EncodeSlot): void {
    if (this.running !== s) throw new InternalError('batch encoder: finish() of a slot that is not running');
    this.batch.wait();
    this.running = null;
    const { sizes, flags } = s;
    for (let k = 0; k < s.count; k++) {
      const size = sizes[k];
      if (size > 0 && size < PAGE_SIZE) {
        flags[k] = DUMP_DH_COMPRESSED;
      } else {
        flags[k] = DUMP_DH_RAW;
        sizes[k] = PAGE_SIZE;
      }
    }
  }

  close(): void {
    this.batch.close();
    this.running = null;
  }
}

/** RLE, NONE, or GZIP without the addon: the worker-thread codec, synchronously. */
class WorkerBatchEncoder implements BatchEncoder {
  readonly slots: [EncodeSlot, EncodeSlot] = [slot(), slot()];
  readonly engine = 'javascript';
  private readonly parallel: ParallelPageCodec;
  private readonly done = new Set<EncodeSlot>();

  constructor(codec: PageCodec, compress: DumpCompress, private readonly say: (line: string) => void) {
    this.parallel = new ParallelPageCodec(codec, compress);
  }

  get threads(): number { return this.parallel.threads; }

  start(s: EncodeSlot): void {
    // ParallelPageCodec takes at most 2 x WORKER_BATCH pages a call; its results live until its next call,
    // so each piece's bytes are copied into this slot's own buffer.
    const step = 2 * WORKER_BATCH;
    for (let k = 0; k < s.count; k += step) {
      const n = Math.min(step, s.count - k);
      const pages = Array.from({ length: n }, (_, j) => s.input.subarray((k + j) * PAGE_SIZE, (k + j + 1) * PAGE_SIZE));
      this.parallel.encodeBatch(pages).forEach((e, j) => {
        const i = k + j;
        s.flags[i] = e.flags;
        s.sizes[i] = e.size;
        if (e.flags === DUMP_DH_COMPRESSED) s.output.set(e.data, i * PAGE_SIZE);
        s.crcs[i] = pageCrc32(e.data);
      });
    }
    this.done.add(s);
  }

  finish(s: EncodeSlot): void {
    if (!this.done.delete(s)) throw new InternalError('batch encoder: finish() of a slot that was not started');
  }

  close(): void {
    this.parallel.close();
    if (this.parallel.lostWorker) this.say('dump: the second compressor thread stopped answering; stage 1 went on on one thread');
  }
}

/**
 * The compression stage 1 keeps the pages of a dump configured `configured`
 * in: for GZIP, LZ4 per page (ours, DUMP_COMPRESS_LZ4: 5-6x faster than
 * deflate at level 1), which the writeout deflates on the way to the
 * device, when the addon was built with liblz4; LKCD_PANIC_CODEC=gzip
 * deflates at panic as LKCD did. Anything else is kept as configured.
 */
export function panicCompress(configured: DumpCompress): DumpCompress {
  const env = process.env.LKCD_PANIC_CODEC;
  if (env !== undefined && env !== '' && env !== 'lz4' && env !== 'gzip') {
    throw new UsageError(`LKCD_PANIC_CODEC=${env}: must be lz4 or gzip`);
  }
  if (configured !== DUMP_COMPRESS_GZIP || env === 'gzip' || !PAGEZIP_LZ4) return configured;
  return DUMP_COMPRESS_LZ4;
}

/** The batch encoder for a dump compressed with `compress`. */
export function makeBatchEncoder(codec: PageCodec, compress: DumpCompress, say: (line: string) => void): BatchEncoder {
  if (compress === DUMP_COMPRESS_LZ4) {
    const threads = stage1Threads();
    const batch = pagezipBatchCompressor('lz4', threads, PAGE_SIZE);
    if (!batch) throw new InternalError('lz4 pages need the pagezip addon built with liblz4');
    return new NativeBatchEncoder(batch, threads);
  }
  if (compress === DUMP_COMPRESS_GZIP) {
    const threads = stage1Threads();
    const batch = pagezipBatchDeflater(DUMP_GZIP_DEFAULT_LEVEL, threads, PAGE_SIZE);
    if (batch) return new NativeBatchEncoder(batch, threads);
  }
  return new WorkerBatchEncoder(codec, compress, say);
}
