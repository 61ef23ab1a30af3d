/**
 * The writeout's transcoder: page records of the dump stage 1 kept in
 * memory (LZ4 pages, ours: DUMP_COMPRESS_LZ4) become page records of the
 * dump's configured compression (GZIP) on their way to the device, so the
 * files on the device and in DUMPDIR are what crash and libkdumpfile read.
 *
 * Each record's page is decoded on the JavaScript thread (LZ4 decodes at
 * several GB/s) into a batch, and the batch is compressed on the native
 * threads by the same batch encoder stage 1 uses for GZIP, while the next
 * batch is decoded: so a page gets the bytes a GZIP stage 1 would have
 * given it (same compressor, same level, same per-page rule), and a
 * transcoded dump equals, record for record, the dump of a stage 1 that
 * deflated at panic.
 *
 * Records come out in the order they went in, each with a tag the caller
 * gave (the writeout's position in the memdev, for its checkpoints).
 */
import { InternalError } from '../../codec/index.js';
import { PAGE_SIZE } from '../../machine/index.js';
import { makePageCodec, type DumpCompress, type PageCodec } from '../codecs/index.js';
import { ENCODE_BATCH_PAGES, makeBatchEncoder, storedBuffer, type BatchEncoder, type EncodeSlot } from './batch_encoder.js';

/** One record as it goes to the device: valid until the callback returns. */
export interface TranscodedRecord {
  pfn: number;
  /** dp_flags (DUMP_DH_COMPRESSED or DUMP_DH_RAW) and dp_size of the new record. */
  flags: number;
  size: number;
  data: Uint8Array;
  /** CRC32 of `data`. */
  dataCrc32: number;
  /** The caller's tags of the record, as given to add(). */
  tag: number;
  tag2: number;
}

export class RecordTranscoder {
  private readonly from: PageCodec;
  private readonly to: PageCodec;
  private readonly encoder: BatchEncoder;
  private filling: EncodeSlot;
  private inFlight: EncodeSlot | null = null;
  private readonly pfns: [Float64Array, Float64Array] = [new Float64Array(ENCODE_BATCH_PAGES), new Float64Array(ENCODE_BATCH_PAGES)];
  private readonly tags: [Float64Array, Float64Array] = [new Float64Array(ENCODE_BATCH_PAGES), new Float64Array(ENCODE_BATCH_PAGES)];
  private readonly tags2: [Float64Array, Float64Array] = [new Float64Array(ENCODE_BATCH_PAGES), new Float64Array(ENCODE_BATCH_PAGES)];
  private readonly record: TranscodedRecord = { pfn: 0, flags: 0, size: 0, data: new Uint8Array(0), dataCrc32: 0, tag: 0, tag2: 0 };

  constructor(from: DumpCompress, to: DumpCompress, private readonly emit: (r: TranscodedRecord) => void, say: (line: string) => void) {
    this.from = makePageCodec(from);
    this.to = makePageCodec(to);
    this.encoder = makeBatchEncoder(this.to, to, say);
    this.filling = this.encoder.slots[0];
    this.filling.count = 0;
  }

  private at(s: EncodeSlot): number { return s === this.encoder.slots[0] ? 0 : 1; }

  /**
   * Decodes the page of a record (its dp_flags and data, checked by the
   * caller's walk) into the batch. Throws CorruptDumpError when it does not
   * decode to a page.
   */
  add(pfn: number, flags: number, data: Uint8Array, tag: number, tag2: number): void {
    const s = this.filling;
    const k = s.count;
    this.from.decode(flags, data, s.input.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE));
    const i = this.at(s);
    this.pfns[i][k] = pfn;
    this.tags[i][k] = tag;
    this.tags2[i][k] = tag2;
    s.count = k + 1;
    if (s.count === ENCODE_BATCH_PAGES) this.launch();
  }

  /** Starts the batch being filled; emits the one that was compressing meanwhile. */
  private launch(): void {
    const next = this.filling;
    if (next.count === 0) return;
    const done = this.inFlight;
    if (done) this.encoder.finish(done);
    this.encoder.start(next);
    this.inFlight = next;
    // Emitted before its slot fills again: the next batch decodes into it.
    if (done) this.emitAll(done);
    this.filling = next === this.encoder.slots[0] ? this.encoder.slots[1] : this.encoder.slots[0];
    this.filling.count = 0;
  }

  private emitAll(s: EncodeSlot): void {
    const i = this.at(s);
    const r = this.record;
    for (let k = 0; k < s.count; k++) {
      const size = s.sizes[k];
      if (size <= 0 || size > PAGE_SIZE) throw new InternalError(`transcoder: page ${k} of a batch has size ${size}`);
      r.pfn = this.pfns[i][k];
      r.flags = s.flags[k];
      r.size = size;
      r.data = storedBuffer(s, k).subarray(k * PAGE_SIZE, k * PAGE_SIZE + size);
      r.dataCrc32 = s.crcs[k];
      r.tag = this.tags[i][k];
      r.tag2 = this.tags2[i][k];
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
      this.encoder.finish(last);
      this.emitAll(last);
    }
  }

  close(): void {
    this.encoder.close();
    this.from.close();
    this.to.close();
  }
}
