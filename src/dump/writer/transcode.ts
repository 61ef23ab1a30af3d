/**
 * The writeout's transcoder: page records of the dump stage 1 kept in
 * memory (LZ4 pages, ours: DUMP_COMPRESS_LZ4) become page records of the
 * dump's configured compression (GZIP) on their way to the device, so the
 * files on the device and in DUMPDIR are what crash and libkdumpfile read.
 *
 * Records are gathered into batches, one page slot each; the native
 * threads of stage 1's GZIP batch deflater decode each LZ4 block and
 * deflate the page while the JavaScript thread gathers the next batch.
 * Without the addon's LZ4, pages are decoded here and deflated by the same
 * batch encoder stage 1 uses. Either way a page gets the bytes a GZIP
 * stage 1 would have given it (same compressor, same level, same per-page
 * rule), and a transcoded dump equals, record for record, the dump of a
 * stage 1 that deflated at panic.
 *
 * Records come out in the order they went in, each with a tag the caller
 * gave (the writeout's position in the memdev, for its checkpoints).
 */
import { CorruptDumpError, InternalError } from '../../codec/index.js';
import { PAGE_SIZE } from '../../machine/index.js';
import {
  DUMP_COMPRESS_GZIP, DUMP_COMPRESS_LZ4, DUMP_DH_COMPRESSED, DUMP_DH_RAW, DUMP_GZIP_DEFAULT_LEVEL, makePageCodec, nativeThreads, PAGEZIP_LZ4,
  pagezipBatchDeflater, type BatchDeflaterHandle, type DumpCompress, type PageCodec,
} from '../codecs/index.js';
import { ENCODE_BATCH_PAGES, makeBatchEncoder, storedBuffer, type BatchEncoder, type EncodeSlot } from './batch_encoder.js';

/** One record as it goes to the device: valid until the callback returns. */
export interface TranscodedRecord {
  pfn: number;
  /** dp_flags (DUMP_DH_COMPRESSED or DUMP_DH_RAW) and dp_size of the new record. */
  flags: number;
  size: number;
  data: Uint8Array;
  /** The caller's tags of the record, as given to add(). */
  tag: number;
  tag2: number;
}

/** A batch: its inputs (a page slot each), what the threads stored, and the caller's facts per record. */
interface Batch {
  readonly slot: EncodeSlot;
  /** LZ4 block length per page slot (PAGE_SIZE: the page itself); native path only. */
  readonly lengths: Int32Array;
  readonly pfns: Float64Array;
  readonly tags: Float64Array;
  readonly tags2: Float64Array;
}

function batchOf(slot: EncodeSlot): Batch {
  const n = ENCODE_BATCH_PAGES;
  return { slot, lengths: new Int32Array(n), pfns: new Float64Array(n), tags: new Float64Array(n), tags2: new Float64Array(n) };
}

function ownSlot(): EncodeSlot {
  return {
    input: Buffer.alloc(ENCODE_BATCH_PAGES * PAGE_SIZE), output: Buffer.alloc(ENCODE_BATCH_PAGES * PAGE_SIZE),
    flags: new Uint8Array(ENCODE_BATCH_PAGES), sizes: new Int32Array(ENCODE_BATCH_PAGES), crcs: new Uint32Array(ENCODE_BATCH_PAGES), count: 0,
  };
}

export class RecordTranscoder {
  private readonly from: PageCodec;
  private readonly to: PageCodec;
  /** LZ4 blocks decoded on the native threads (null: pages decoded here, then the encoder). */
  private readonly native: BatchDeflaterHandle | null;
  private readonly encoder: BatchEncoder | null;
  private readonly batches: [Batch, Batch];
  private filling: Batch;
  private inFlight: Batch | null = null;
  private readonly record: TranscodedRecord = { pfn: 0, flags: 0, size: 0, data: new Uint8Array(0), tag: 0, tag2: 0 };

  constructor(from: DumpCompress, to: DumpCompress, private readonly emit: (r: TranscodedRecord) => void, say: (line: string) => void) {
    this.from = makePageCodec(from);
    this.to = makePageCodec(to);
    this.native = from === DUMP_COMPRESS_LZ4 && to === DUMP_COMPRESS_GZIP && PAGEZIP_LZ4
      ? pagezipBatchDeflater(DUMP_GZIP_DEFAULT_LEVEL, nativeThreads(), PAGE_SIZE)
      : null;
    this.encoder = this.native ? null : makeBatchEncoder(this.to, to, say);
    const slots = this.encoder ? this.encoder.slots : [ownSlot(), ownSlot()];
    this.batches = [batchOf(slots[0]), batchOf(slots[1])];
    this.filling = this.batches[0];
  }

  /**
   * Takes a record (its dp_flags and data, checked by the caller's walk)
   * into the batch. Throws CorruptDumpError when it cannot be a page.
   */
  add(pfn: number, flags: number, data: Uint8Array, tag: number, tag2: number): void {
    const b = this.filling;
    const s = b.slot;
    const k = s.count;
    const at = k * PAGE_SIZE;
    if (this.native && (flags & DUMP_DH_COMPRESSED)) {
      // An LZ4 block is strictly smaller than a page, or it would have been stored raw.
      if (data.length >= PAGE_SIZE) throw new CorruptDumpError(`the LZ4 record of PFN ${pfn} is ${data.length} bytes, not less than a page`, { struct: 'dump_page', field: 'dp_size' });
      s.input.set(data, at);
      b.lengths[k] = data.length;
    } else {
      this.from.decode(flags, data, s.input.subarray(at, at + PAGE_SIZE));
      b.lengths[k] = PAGE_SIZE;
    }
    b.pfns[k] = pfn;
    b.tags[k] = tag;
    b.tags2[k] = tag2;
    s.count = k + 1;
    if (s.count === ENCODE_BATCH_PAGES) this.launch();
  }

  private start(b: Batch): void {
    const s = b.slot;
    // No CRC32s from the threads: the writeout takes each record's over its new header and data.
    if (this.native) this.native.start(s.input, s.count, s.output, s.sizes, undefined, b.lengths);
    else this.encoder!.start(s);
  }

  private finish(b: Batch): void {
    const s = b.slot;
    if (!this.native) { this.encoder!.finish(s); return; }
    this.native.wait();
    for (let k = 0; k < s.count; k++) {
      const size = s.sizes[k];
      if (size > 0 && size < PAGE_SIZE) {
        s.flags[k] = DUMP_DH_COMPRESSED;
      } else {
        s.flags[k] = DUMP_DH_RAW;
        s.sizes[k] = PAGE_SIZE;
      }
    }
  }

  /** Starts the batch being filled; emits the one that was compressing meanwhile. */
  private launch(): void {
    const next = this.filling;
    if (next.slot.count === 0) return;
    const done = this.inFlight;
    if (done) this.finish(done);
    this.start(next);
    this.inFlight = next;
    // Emitted before its slot fills again: the next batch goes into it.
    if (done) this.emitAll(done);
    this.filling = next === this.batches[0] ? this.batches[1] : this.batches[0];
    this.filling.slot.count = 0;
  }

  private emitAll(b: Batch): void {
    const s = b.slot;
    const r = this.record;
    for (let k = 0; k < s.count; k++) {
      const size = s.sizes[k];
      if (size <= 0 || size > PAGE_SIZE) throw new InternalError(`transcoder: page ${k} of a batch has size ${size}`);
      r.pfn = b.pfns[k];
      r.flags = s.flags[k];
      r.size = size;
      // The native path leaves every stored page in the output; the encoder leaves raw ones in the input.
      r.data = (this.native ? s.output : storedBuffer(s, k)).subarray(k * PAGE_SIZE, k * PAGE_SIZE + size);
      r.tag = b.tags[k];
      r.tag2 = b.tags2[k];
      this.emit(r);
    }
    s.count = 0;
  }

  /** Everything added so far is compressed and emitted. */
  flush(): void {
    this.launch();
    const last = this.inFlight;
    if (last) {
      this.inFlight = null;
      this.finish(last);
      this.emitAll(last);
    }
  }

  close(): void {
    this.native?.close();
    this.encoder?.close();
    this.from.close();
    this.to.close();
  }
}
