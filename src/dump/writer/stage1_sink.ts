/**
 * Where stage 1's records go: the space (frames that may be reused, handed
 * to the memdev as it fills), the sink (LKCD's dump buffer: records are
 * appended to a DUMP_BUFFER_SIZE buffer and written into the memdev a
 * whole page at a time), the segments of the stream, and the record table.
 * Offsets, frame numbers and byte counts are plain numbers: a dump of 16
 * GiB is 2^34 bytes, far below 2^53.
 */
import zlib from 'node:zlib';
import { InternalError } from '../../codec/index.js';
import { PAGE_SIZE, type PhysicalRam } from '../../machine/index.js';
import { DUMP_BUFFER_SIZE } from '../lkcd/constants.js';
import { dump_page } from '../lkcd/dump_page.js';
import {
  DUMP_MAP_SZ, MAX_DUMP_SEGMENTS, RECORD_DESCS_PER_PAGE, dump_record_desc, dump_record_table_page, type DumpSegment,
} from '../memdev/dump_config_block.js';
import type { Memdev } from '../memdev/memdev.js';
import { FrameQueue, type PfnBitmap } from './pfn_set.js';
import { END_RESERVE, dataBytesOf } from './stage1_plan.js';

/** A saved frame comes back as this much room (its share of a map page paid). */
export const FRAME_GAIN = Math.floor(PAGE_SIZE * DUMP_MAP_SZ / (DUMP_MAP_SZ + 1));

/**
 * The frames stage 1 may reuse, in the order they became free (LKCD's
 * dump_overlay_pages_done), and the memdev they are handed to.
 */
export class DumpSpace {
  readonly pool = new FrameQueue();
  /** Every frame taken from the pool, for a live dump (its frames leave the allocator at the end). */
  private readonly taken: FrameQueue | null;

  constructor(private readonly memdev: Memdev, private readonly owned: PfnBitmap, trackTaken: boolean) {
    this.taken = trackTaken ? new FrameQueue() : null;
  }

  /** Bytes of logical space the memdev has backed. */
  get lastOffset(): number {
    return Number(this.memdev.handle.last_offset);
  }

  /** Takes the oldest pool frame for the dump's own use; -1 when the pool is empty. */
  takeFrame(): number {
    const f = this.pool.shift();
    if (f < 0) return -1;
    this.owned.addFrame(f);
    this.taken?.push(f);
    return f;
  }

  /** Backs the memdev's logical space up to `end`, from the pool. */
  ensureBacked(end: number): void {
    while (this.lastOffset < end) {
      const f = this.takeFrame();
      if (f < 0) throw new InternalError('dump: space accounting allowed a write the pool cannot back');
      this.memdev.addFrame(f);
    }
  }

  takenFrames(): bigint[] {
    const out: bigint[] = [];
    this.taken?.forEachRun((s, e) => { for (let f = s; f < e; f++) out.push(BigInt(f)); });
    return out;
  }
}

interface TablePage { bytes: Buffer; count: number; frame: number }

/**
 * Writes the record table. Descriptor pages wait in memory until a frame is
 * free for them (at the start of an all-RAM dump none is, until the first
 * saved page gives its frame back); room() keeps those frames reserved.
 * A page is written once the frame of the page after it is known.
 */
export class RecordTableWriter {
  count = 0;
  frames = 0;
  private readonly pages: TablePage[] = [];
  private root = 0;

  constructor(private readonly ram: PhysicalRam, private readonly space: DumpSpace) {}

  add(frame: number, dpSize: number, crc16: number): void {
    let cur = this.pages[this.pages.length - 1];
    if (!cur || cur.count === RECORD_DESCS_PER_PAGE) {
      cur = { bytes: Buffer.alloc(PAGE_SIZE), count: 0, frame: -1 };
      this.pages.push(cur);
    }
    const at = dump_record_table_page.offsetOf.entries + cur.count * dump_record_desc.size;
    cur.bytes.writeUInt32LE(frame, at + dump_record_desc.offsetOf.pfn);
    cur.bytes.writeUInt16LE(dpSize, at + dump_record_desc.offsetOf.dp_size);
    cur.bytes.writeUInt16LE(crc16, at + dump_record_desc.offsetOf.crc16);
    cur.count++;
    this.count++;
  }

  /** Pool frames the table will take for the records so far plus the next one. */
  framesOwed(): number {
    const need = Math.floor((this.count + RECORD_DESCS_PER_PAGE) / RECORD_DESCS_PER_PAGE);
    return need > this.frames ? need - this.frames : 0;
  }

  /** Gives waiting pages frames while there are free ones, and writes every page it can. */
  place(final = false): void {
    for (const p of this.pages) {
      if (p.frame >= 0) continue;
      const f = this.space.takeFrame();
      if (f < 0) break;
      p.frame = f;
      this.frames++;
      if (this.root === 0) this.root = f;
    }
    while (this.pages.length > 0) {
      const p = this.pages[0];
      const next = this.pages[1];
      const complete = p.count === RECORD_DESCS_PER_PAGE || final;
      if (p.frame < 0 || !complete || (next ? next.frame < 0 : !final)) break;
      this.writePage(p, next ? next.frame : 0);
      this.pages.shift();
    }
  }

  private writePage(p: TablePage, next: number): void {
    const o = dump_record_table_page.offsetOf;
    p.bytes.writeUInt32LE(next % 0x100000000, o.next_pfn);
    p.bytes.writeUInt32LE(Math.floor(next / 0x100000000), o.next_pfn + 4);
    p.bytes.writeUInt32LE(p.count, o.count);
    const body = p.bytes.subarray(o.entries, o.entries + p.count * dump_record_desc.size);
    p.bytes.writeUInt32LE(zlib.crc32(body) >>> 0, o.entries_crc32);
    this.ram.writeAt(p.frame * PAGE_SIZE, p.bytes);
  }

  /** Places and writes the last pages; returns the first page's frame (0 when no record was saved). */
  finish(): number {
    this.place(true);
    if (this.pages.length > 0) throw new InternalError('dump: no frame left for the record table');
    return this.root;
  }
}

/**
 * LKCD's dump buffer in front of the memdev: records are appended to a
 * DUMP_BUFFER_SIZE buffer (which lives in the dumper's own frames, as
 * dump_buf does), and whole pages of it go into the memdev's logical space,
 * backed from the pool just before they are written.
 */
export class RecordSink {
  readonly table: RecordTableWriter;
  readonly segments: DumpSegment[] = [];
  private readonly buffer = Buffer.alloc(DUMP_BUFFER_SIZE);
  private readonly header = Buffer.alloc(dump_page.size);
  /** Logical offset of buffer[0]. */
  private bufStart: number;
  private bufLen = 0;
  private seg: DumpSegment | null = null;

  constructor(
    private readonly ram: PhysicalRam,
    private readonly memdev: Memdev,
    readonly space: DumpSpace,
    private readonly dumpBuf: { frame: number; pages: number },
    headerLen: number,
  ) {
    this.table = new RecordTableWriter(ram, space);
    this.bufStart = headerLen;
    // The header region must be backed before any record; bootstrap pages cover it.
    space.ensureBacked(headerLen);
  }

  /** Logical offset of the next record. */
  get position(): number {
    return this.bufStart + this.bufLen;
  }

  /** Bytes the dump may still grow by: backed space, plus what the pool can back, less what the table owes. */
  room(): number {
    const owed = this.table.framesOwed();
    const poolSize = this.space.pool.size;
    const poolBytes = poolSize >= owed ? dataBytesOf(poolSize - owed) : -(owed - poolSize) * PAGE_SIZE;
    return this.space.lastOffset + poolBytes - this.position - END_RESERVE;
  }

  /** Starts a segment of `pass` unless the current one is of it. */
  openSegment(pass: number): void {
    if (this.seg && this.seg.pass === pass) return;
    this.closeSegment();
    if (this.segments.length >= MAX_DUMP_SEGMENTS) throw new InternalError('dump: too many segments');
    const at = BigInt(this.position);
    this.seg = { pass, nr_pages: 0, start: at, end: at };
  }

  closeSegment(): void {
    if (this.seg && this.seg.nr_pages > 0) {
      this.seg.end = BigInt(this.position);
      this.segments.push(this.seg);
    }
    this.seg = null;
  }

  /**
   * Appends one page record: its header (written here), then dpSize bytes
   * of `src` from `srcStart`, counted in the open segment and the table.
   */
  appendRecord(frame: number, flags: number, dpSize: number, src: Buffer, srcStart: number, crc16: number): void {
    if (!this.seg) throw new InternalError('dump: a record outside a segment');
    const h = this.header;
    // dp_address = frame * PAGE_SIZE, as two u32 halves (frame < 2^32).
    h.writeUInt32LE((frame % 0x100000) * PAGE_SIZE, 0);
    h.writeUInt32LE(Math.floor(frame / 0x100000), 4);
    h.writeUInt32LE(dpSize, 8);
    h.writeUInt32LE(flags, 12);
    this.append(h, 0, dump_page.size);
    this.append(src, srcStart, srcStart + dpSize);
    this.table.add(frame, dpSize, crc16);
    this.seg.nr_pages++;
  }

  /** Appends the END record (after the last segment is closed). */
  appendEnd(flags: number): void {
    this.header.fill(0);
    this.header.writeUInt32LE(flags, 12);
    this.append(this.header, 0, dump_page.size);
  }

  private append(src: Buffer, start: number, end: number): void {
    while (start < end) {
      const n = Math.min(end - start, this.buffer.length - this.bufLen);
      src.copy(this.buffer, this.bufLen, start, start + n);
      this.bufLen += n;
      start += n;
      if (this.bufLen === this.buffer.length) this.flushPages(false);
    }
  }

  /** Writes the buffer's whole pages (all of it, zero-padded, when final) into the memdev. */
  flushPages(final: boolean): void {
    const whole = final ? Math.ceil(this.bufLen / PAGE_SIZE) * PAGE_SIZE : Math.floor(this.bufLen / PAGE_SIZE) * PAGE_SIZE;
    if (whole === 0) return;
    if (final) this.buffer.fill(0, this.bufLen, whole);
    this.ram.writeAt(this.dumpBuf.frame * PAGE_SIZE, this.buffer.subarray(0, Math.min(whole, this.dumpBuf.pages * PAGE_SIZE)));
    this.space.ensureBacked(this.bufStart + whole);
    this.memdev.writePages(BigInt(this.bufStart), this.buffer.subarray(0, whole));
    this.buffer.copyWithin(0, whole, this.bufLen);
    this.bufStart += whole;
    this.bufLen = final ? 0 : this.bufLen - whole;
  }
}
