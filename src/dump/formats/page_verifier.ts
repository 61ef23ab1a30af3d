/**
 * Decompresses the GZIP pages of a walk in batches on native threads
 * (lkcd-pagezip's BatchInflater, libdeflate where it was built with it),
 * while the walk goes on reading the next records: each page must give
 * exactly one page. Results come back in walk order. A page the batch
 * refuses, or that gives the wrong length, is decoded again alone by the
 * caller's single-page check, so its problem is worded exactly as the
 * one-page path words it (zlib's own reason).
 */
import type { DumpError } from '../../codec/index.js';
import { pagezipBatchInflater, type BatchInflaterHandle } from '../codecs/index.js';
import { DUMP_DH_COMPRESSED } from '../lkcd/constants.js';
import type { DumpPage } from '../lkcd/dump_page.js';

/** Records per batch: enough that a call costs nothing, few enough to keep the walk close behind. */
const VERIFY_BATCH = 512;

/** A record that passed the walk's checks, waiting for its page's verdict. */
export interface PendingRecord {
  pfn: bigint;
  offset: bigint;
  dp: DumpPage;
  /** The caller's number for the record (e.g. its CRC32), handed back with the verdict. */
  tag: number;
}

/** One buffer of records: their data packed back to back, and the pages they give. */
interface Batch {
  readonly recs: PendingRecord[];
  readonly data: Uint8Array;
  readonly offsets: Uint32Array;
  readonly lengths: Uint32Array;
  readonly pages: Uint8Array;
  readonly results: Int32Array;
  /** Records of recs[] that are compressed: index into offsets/lengths/results, -1 for raw. */
  readonly slot: Int32Array;
  used: number;
  compressed: number;
}

function batch(pageSize: number): Batch {
  return {
    recs: [], data: new Uint8Array(VERIFY_BATCH * pageSize), offsets: new Uint32Array(VERIFY_BATCH), lengths: new Uint32Array(VERIFY_BATCH),
    pages: new Uint8Array(VERIFY_BATCH * pageSize), results: new Int32Array(VERIFY_BATCH), slot: new Int32Array(VERIFY_BATCH), used: 0, compressed: 0,
  };
}

export class BatchPageVerifier {
  private readonly batches: [Batch, Batch];
  private filling: Batch;
  private running: Batch | null = null;

  private constructor(
    private readonly inflater: BatchInflaterHandle,
    private readonly pageSize: number,
    /** The one-page check: the problem of a page, or null. */
    private readonly checkOne: (pfn: bigint, dp: DumpPage, data: Uint8Array, offset: bigint) => DumpError | null,
    /** Each record's verdict, in the order the records were added. */
    private readonly done: (rec: PendingRecord, problem: DumpError | null) => void,
  ) {
    this.batches = [batch(pageSize), batch(pageSize)];
    this.filling = this.batches[0];
  }

  /** A verifier on `threads` threads, or null when the addon is not there (the caller checks page by page). */
  static open(
    threads: number, pageSize: number,
    checkOne: (pfn: bigint, dp: DumpPage, data: Uint8Array, offset: bigint) => DumpError | null,
    done: (rec: PendingRecord, problem: DumpError | null) => void,
  ): BatchPageVerifier | null {
    const inflater = pagezipBatchInflater(threads, pageSize);
    return inflater ? new BatchPageVerifier(inflater, pageSize, checkOne, done) : null;
  }

  /** Queues a record whose header passed; `data` is copied (it may be reused by the caller). */
  add(rec: PendingRecord, data: Uint8Array): void {
    const b = this.filling;
    const i = b.recs.length;
    b.recs.push(rec);
    if (rec.dp.dp_flags === DUMP_DH_COMPRESSED) {
      b.data.set(data, b.used);
      b.offsets[b.compressed] = b.used;
      b.lengths[b.compressed] = data.length;
      b.slot[i] = b.compressed++;
      b.used += data.length;
    } else {
      b.slot[i] = -1;
    }
    if (b.recs.length === VERIFY_BATCH) this.launch();
  }

  /** Starts the batch being filled; hands out the verdicts of the one that ran meanwhile. */
  private launch(): void {
    const b = this.filling;
    if (b.recs.length === 0) return;
    this.finishRunning();
    this.inflater.start(b.data, b.offsets, b.lengths, b.compressed, b.pages, b.results);
    this.running = b;
    this.filling = b === this.batches[0] ? this.batches[1] : this.batches[0];
  }

  private finishRunning(): void {
    const b = this.running;
    if (!b) return;
    this.running = null;
    this.inflater.wait();
    const ps = this.pageSize;
    for (let i = 0; i < b.recs.length; i++) {
      const rec = b.recs[i];
      const k = b.slot[i];
      let problem: DumpError | null = null;
      if (k >= 0 && b.results[k] !== ps) {
        const at = b.offsets[k];
        problem = this.checkOne(rec.pfn, rec.dp, b.data.subarray(at, at + b.lengths[k]), rec.offset);
      }
      this.done(rec, problem);
    }
    b.recs.length = 0;
    b.used = 0;
    b.compressed = 0;
  }

  /** Every record added so far has its verdict. */
  drain(): void {
    this.launch();
    this.finishRunning();
  }

  close(): void {
    this.inflater.close();
  }
}
