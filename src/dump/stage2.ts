import zlib from 'node:zlib';
import { CorruptDumpError, hex, viewOf } from '../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../machine/index.js';
import { blankPage, BuddyAllocator, Kernel, MemMap, PG_reserved, pageFlag } from '../kernel/index.js';
import { dump_config } from '../kernel/structs/dump_config.js';
import { isDeviceIoError, type BlockDevice } from './device.js';
import { CRASHDUMP_ADDR_NONE, savedDumpFrames } from './crashdump_boot.js';
import {
  DUMP_BUFFER_SIZE, DUMP_DH_COMPRESSED, DUMP_DH_END, DUMP_DH_RAW, DUMP_DH_TRUNCATED, DUMP_HEADER_OFFSET, DUMP_MAGIC_NUMBER,
} from './lkcd/constants.js';
import { dump_header, type DumpHeader } from './lkcd/dump_header.js';
import { dump_header_asm } from './lkcd/dump_header_asm.js';
import { dump_page } from './lkcd/dump_page.js';
import { readBlock, writeBlock } from './memdev/block.js';
import {
  DUMP_STATE_SAVED, DUMP_STATE_WRITTEN, RECORD_DESCS_PER_PAGE, WRITEOUT_NONE, WRITEOUT_RUNNING, dump_missing_page,
  dump_record_desc, dump_record_table_page, recordCheck, type DumpConfigBlock,
  type DumpSegment,
} from './memdev/dump_config_block.js';
import { Memdev } from './memdev/memdev.js';
import { killPoint } from './faults.js';
import { encodeLkcdMissingTrailer, lkcd_missing_trailer } from './formats/lkcd.js';

/** Device bytes written between progress checkpoints. */
const CHECKPOINT_BYTES = 4n << 20n;
/** LKCD fills the tail of the last dump buffer with 'm' (dump_lcrash_update_end_marker). */
const TAIL_FILL = 0x6d;

export interface WriteoutResult {
  pages: bigint;
  /** Pages whose record no longer matched the record table: damaged in memory, not written. */
  corrupted: bigint[];
  /** The device was too small or failed: the dump stays in memory for another writeout. */
  keptForRetry?: boolean;
  /** The I/O error that cut the writeout short, if one did. */
  ioError?: string;
  bytes: bigint;
  truncated: boolean;
  missingPages: bigint;
  resumed: boolean;
  seconds: number;
}

/** A segment in write order, with the stream index of its first record (for the record table). */
export interface OrderedSegment extends DumpSegment { firstRecord: number }

/** Order in which stage 2 writes segments: kern, user, unused (forward pass order), stable within a pass. */
export function writeOrder(block: DumpConfigBlock): OrderedSegment[] {
  let first = 0;
  const inStream = block.segments.slice(0, block.nr_segments).map((s, i) => {
    const o = { ...s, firstRecord: first, i };
    first += s.nr_pages;
    return o;
  });
  return inStream.sort((a, b) => (a.pass - b.pass) || (a.i - b.i)).map(({ i: _i, ...s }) => s);
}

/** The record table, loaded: expected address, size and data check of every record; untrusted where a table page was damaged. */
export interface RecordTable {
  address: BigUint64Array;
  size: Uint32Array;
  crc: Uint32Array;
  trusted: Uint8Array;
}

export function loadRecordTable(kernel: Kernel, block: DumpConfigBlock): RecordTable | null {
  if (block.record_table_root === 0n) return null;
  const n = Number(block.nr_records);
  const t: RecordTable = { address: new BigUint64Array(n), size: new Uint32Array(n), crc: new Uint32Array(n), trusted: new Uint8Array(n) };
  const maxPfn = kernel.ram.size / PAGE_SIZE_N;
  let pfn = block.record_table_root;
  let i = 0;
  while (pfn !== 0n && i < n) {
    const raw = kernel.ram.read(pfn * PAGE_SIZE_N, PAGE_SIZE);
    const page = dump_record_table_page.decode(viewOf(raw));
    const count = Math.min(page.count, RECORD_DESCS_PER_PAGE, n - i);
    const body = raw.subarray(dump_record_table_page.offsetOf.entries, dump_record_table_page.offsetOf.entries + count * dump_record_desc.size);
    const ok = (zlib.crc32(body) >>> 0) === page.entries_crc32 && page.count <= RECORD_DESCS_PER_PAGE;
    for (let k = 0; k < count; k++, i++) {
      const e = page.entries[k];
      t.address[i] = BigInt(e.pfn) * PAGE_SIZE_N;
      t.size[i] = e.dp_size;
      t.crc[i] = e.crc16;
      t.trusted[i] = ok && BigInt(e.pfn) < maxPfn && e.dp_size > 0 && e.dp_size <= PAGE_SIZE ? 1 : 0;
    }
    if (!ok && page.count > RECORD_DESCS_PER_PAGE) break;
    pfn = page.next_pfn;
    if (pfn >= kernel.ram.size / PAGE_SIZE_N) break;
  }
  return t;
}

/** Sorts and merges [start, end) ranges. */
export function mergeRanges(ranges: Array<[bigint, bigint]>): Array<[bigint, bigint]> {
  const sorted = ranges.map(([a, b]) => [a, b] as [bigint, bigint]).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const out: Array<[bigint, bigint]> = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1]) { if (r[1] > last[1]) last[1] = r[1]; } else out.push(r);
  }
  return out;
}

/** Coalesces pfns into ranges. */
export function pfnsToRanges(pfns: bigint[]): Array<[bigint, bigint]> {
  const sorted = [...pfns].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const out: Array<[bigint, bigint]> = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last && last[1] === p) last[1] = p + 1n;
    else out.push([p, p + 1n]);
  }
  return out;
}

function stage1Missing(kernel: Kernel, block: DumpConfigBlock): Array<[bigint, bigint]> {
  const out: Array<[bigint, bigint]> = [];
  let pfn = block.missing_root;
  while (pfn !== 0n) {
    const page = dump_missing_page.decode(viewOf(kernel.ram.read(pfn * PAGE_SIZE_N, PAGE_SIZE)));
    for (let i = 0; i < page.count; i++) out.push([page.ranges[i].start, page.ranges[i].end]);
    pfn = page.next_pfn;
  }
  return out;
}

/**
 * Stage 2 (LKCD's dumper_stage2 with the "passthru" format): copies the
 * dump saved in memory to the dump device as an ordinary LKCD v9 dump,
 * header at DUMP_HEADER_OFFSET, first page record dh_dump_buffer_size
 * after it, passes in forward order (kern, user, unused), an END record,
 * then the final header. Every page header is checked on the way
 * (dph_valid). Progress is checkpointed in the config block in RAM after
 * each fsync of the device, and each checkpoint commits the machine's step
 * (the device is never rolled back), so an interrupted writeout resumes
 * where it stopped and produces the same bytes. Frames are cleared and handed back to the
 * allocator only after everything is durably on the device.
 */
export function writeoutDump(kernel: Kernel, blockPhys: bigint, device: BlockDevice, onProgress?: (done: bigint, total: bigint) => void): WriteoutResult {
  const before = readBlock(kernel.ram, blockPhys);
  const wasRunning = before.wo_state === WRITEOUT_RUNNING && before.wo_device_size === device.size;
  try {
    return writeoutWithin(kernel, blockPhys, device, device.size, onProgress);
  } catch (e) {
    // The device failed part-way: write a TRUNCATED dump that ends before the failing offset
    // (kernel pages come first), from the last checkpoint, and keep the frames for a retry.
    if (!isDeviceIoError(e) || e.where.offset === undefined) throw e;
    const limit = BigInt(e.where.offset);
    const r = writeoutWithin(kernel, blockPhys, device, limit, onProgress);
    // The second attempt picks up the first one's checkpoints: still one writeout, not a resumed one.
    return { ...r, resumed: wasRunning, ioError: e.message };
  }
}

function writeoutWithin(kernel: Kernel, blockPhys: bigint, device: BlockDevice, usable: bigint, onProgress?: (done: bigint, total: bigint) => void): WriteoutResult {
  const t0 = performance.now();
  const ram = kernel.ram;
  let block = readBlock(ram, blockPhys);
  if (block.state === DUMP_STATE_WRITTEN) {
    releaseDump(kernel, blockPhys);
    return { pages: block.wo_pages, corrupted: [], bytes: block.wo_dev_offset, truncated: false, missingPages: 0n, resumed: true, seconds: 0 };
  }
  if (block.state !== DUMP_STATE_SAVED) throw new CorruptDumpError(`dump config block at ${hex(blockPhys)} holds no saved dump`, { struct: 'dump_config_block', field: 'state' });
  const memdev = Memdev.open(ram, block.memdev);
  const headerBytes = savedHeader(kernel, block, memdev);
  const header = dump_header.decode(viewOf(headerBytes), 0);
  if (header.dh_magic_number !== DUMP_MAGIC_NUMBER) throw new CorruptDumpError(`saved dump header magic ${hex(header.dh_magic_number)} is wrong`, { struct: 'dump_header', field: 'dh_magic_number' });
  const firstRecord = DUMP_HEADER_OFFSET + header.dh_dump_buffer_size;
  const resumed = block.wo_state === WRITEOUT_RUNNING && block.wo_device_size === device.size && block.wo_dev_offset <= usable;
  if (!resumed) {
    // A new writeout: whatever the device held is no longer a valid dump from here on.
    device.write(0n, Buffer.alloc(Number(DUMP_HEADER_OFFSET) + DUMP_BUFFER_SIZE));
    device.sync();
    block = { ...block, wo_state: WRITEOUT_RUNNING, wo_segment: 0, wo_seg_offset: 0n, wo_dev_offset: firstRecord, wo_pages: 0n, wo_device_size: device.size };
    writeBlock(ram, blockPhys, block);
    // A commit point of the step: a kill from here on resumes from what RAM says the device holds.
    ram.commit();
    killPoint('writeout started');
  }
  const order = writeOrder(block);
  const total = order.reduce((a, s) => a + (s.end - s.start), 0n);
  const priorMissing = stage1Missing(kernel, block);
  /** An upper bound of the pages not yet written from segment `segIdx` on (for the trailer's room). */
  const pagesFrom: number[] = new Array(order.length + 1).fill(0);
  for (let i = order.length - 1; i >= 0; i--) pagesFrom[i] = pagesFrom[i + 1] + order[i].nr_pages;
  const remainingPagesFrom = (segIdx: number): number => pagesFrom[segIdx];

  let devOffset = block.wo_dev_offset;
  let pages = block.wo_pages;
  let done = order.slice(0, block.wo_segment).reduce((a, s) => a + (s.end - s.start), 0n) + block.wo_seg_offset;
  let sinceCheckpoint = 0n;
  const out = Buffer.alloc(1 << 20);
  let outLen = 0;
  let outStart = devOffset;
  const flushOut = (): void => {
    if (outLen === 0) return;
    device.write(outStart, out.subarray(0, outLen));
    outStart += BigInt(outLen);
    outLen = 0;
    killPoint('device write');
  };
  const checkpoint = (segIdx: number, segOffset: bigint): void => {
    flushOut();
    device.sync();
    block = { ...block, wo_segment: segIdx, wo_seg_offset: segOffset, wo_dev_offset: devOffset, wo_pages: pages };
    writeBlock(ram, blockPhys, block);
    // The checkpoint in RAM must match the device, which no rollback touches: commit it.
    ram.commit();
    sinceCheckpoint = 0n;
    killPoint('checkpoint');
  };

  const notWritten: bigint[] = [];
  const corrupted: bigint[] = [];
  let truncated = false;
  // Segments are read from the memdev in large chunks; records are cut out of them, and each is
  // checked against the record table: a record whose header or data no longer matches what stage 1
  // stored (a bit flipped in RAM since) is skipped and named, and the walk goes on.
  const table = loadRecordTable(kernel, block);
  const CHUNK = 1 << 20;
  for (let si = block.wo_segment; si < order.length; si++) {
    const seg = order[si];
    let pos = seg.start;
    let recIdx = seg.firstRecord;
    const resumeAt = seg.start + (si === block.wo_segment ? block.wo_seg_offset : 0n);
    let chunk: Buffer = Buffer.alloc(0);
    let chunkStart = pos;
    const bytesAt = (at: bigint, len: number): Buffer => {
      if (at < chunkStart || at + BigInt(len) > chunkStart + BigInt(chunk.length)) {
        const n = Number(seg.end - at < BigInt(CHUNK) ? seg.end - at : BigInt(CHUNK));
        if (n < len) throw new CorruptDumpError(`page record at memdev offset ${hex(at)} runs past the end of its segment (${hex(seg.end)})`, { struct: 'dump_page', offset: at });
        chunk = memdev.read(at, n);
        chunkStart = at;
      }
      const off = Number(at - chunkStart);
      return chunk.subarray(off, off + len);
    };
    // A resumed writeout finds its record index by the lengths the table gives.
    if (table && resumeAt > pos) {
      while (pos < resumeAt && recIdx < table.size.length) { pos += BigInt(dump_page.size + table.size[recIdx]); recIdx++; }
    } else {
      pos = resumeAt;
    }
    while (pos < seg.end) {
      const hdr = bytesAt(pos, dump_page.size);
      const dp = dump_page.decode(viewOf(hdr));
      const desc = table && recIdx < table.size.length && table.trusted[recIdx] ? recIdx : -1;
      // dph_valid(): aligned address, RAW or COMPRESSED, size within a page.
      const headerValid = dp.dp_address % PAGE_SIZE_N === 0n && (dp.dp_flags === DUMP_DH_RAW || dp.dp_flags === DUMP_DH_COMPRESSED)
        && dp.dp_size <= PAGE_SIZE && (dp.dp_flags !== DUMP_DH_RAW || dp.dp_size === PAGE_SIZE) && dp.dp_size !== 0;
      const size = desc >= 0 ? table!.size[desc] : dp.dp_size;
      const recLen = BigInt(dump_page.size + size);
      recIdx++;
      if (desc < 0 && !headerValid) {
        throw new CorruptDumpError(`Invalid page hdr at offset ${hex(pos)} of the saved dump (dp_address ${hex(dp.dp_address)}, dp_size ${dp.dp_size}, dp_flags ${hex(dp.dp_flags)})`, { struct: 'dump_page', offset: pos });
      }
      if (desc >= 0) {
        const addr = table!.address[desc];
        const intact = headerValid && dp.dp_address === addr && dp.dp_size === size
          && recordCheck(zlib.crc32(bytesAt(pos + BigInt(dump_page.size), size))) === table!.crc[desc];
        if (!intact) {
          corrupted.push(addr / PAGE_SIZE_N);
          notWritten.push(addr / PAGE_SIZE_N);
          pos += recLen;
          continue;
        }
      }
      const trailerBound = BigInt(dump_page.size + lkcd_missing_trailer.size) + 16n * BigInt(priorMissing.length + corrupted.length + remainingPagesFrom(si) + 1);
      if (truncated || devOffset + recLen + trailerBound > usable) {
        truncated = true;
        notWritten.push(dp.dp_address / PAGE_SIZE_N);
        pos += recLen;
        continue;
      }
      const record = bytesAt(pos, Number(recLen));
      if (outLen + Number(recLen) > out.length) flushOut();
      record.copy(out, outLen);
      outLen += Number(recLen);
      devOffset += recLen;
      pos += recLen;
      done += recLen;
      pages++;
      sinceCheckpoint += recLen;
      if (sinceCheckpoint >= CHECKPOINT_BYTES) {
        checkpoint(si, pos - seg.start);
        onProgress?.(done, total);
      }
    }
    if (!truncated) checkpoint(si + 1, 0n);
  }
  flushOut();

  const rec = Buffer.alloc(dump_page.size);
  // END record (with DUMP_DH_TRUNCATED when pages are missing), the trailer, the 'm' tail.
  const missing = mergeRanges([...priorMissing, ...pfnsToRanges(notWritten)]);
  const anyMissing = missing.length > 0 || block.truncated !== 0;
  dump_page.encode({ dp_address: 0n, dp_size: 0, dp_flags: DUMP_DH_END | (anyMissing ? DUMP_DH_TRUNCATED : 0) }, viewOf(rec));
  const trailer = missing.length ? Buffer.from(encodeLkcdMissingTrailer(missing)) : Buffer.alloc(0);
  let tail = Buffer.concat([rec, trailer]);
  const endOfTail = devOffset + BigInt(tail.length);
  const bufEnd = ((endOfTail - firstRecord + BigInt(DUMP_BUFFER_SIZE) - 1n) / BigInt(DUMP_BUFFER_SIZE)) * BigInt(DUMP_BUFFER_SIZE) + firstRecord;
  if (bufEnd <= usable) tail = Buffer.concat([tail, Buffer.alloc(Number(bufEnd - endOfTail), TAIL_FILL)]);
  device.write(devOffset, tail);
  device.sync();
  killPoint('end record');

  // The final header, last: until now the device did not hold a valid dump.
  const finalHeader: DumpHeader = { ...header, dh_num_pages: Number(pages) };
  const hdrBuf = Buffer.alloc(DUMP_BUFFER_SIZE);
  dump_header.encode(finalHeader, viewOf(hdrBuf), 0);
  headerBytes.copy(hdrBuf, dump_header.size, dump_header.size);
  device.write(DUMP_HEADER_OFFSET, hdrBuf);
  device.sync();
  killPoint('final header');

  const missingPages0 = missing.reduce((a, [s0, e0]) => a + (e0 - s0), 0n);
  if (truncated) {
    // The device cut the dump short: the frames stay reserved in RAM with the dump, so a retry on a
    // bigger or mended device writes it whole.
    block = { ...block, wo_state: WRITEOUT_NONE, wo_dev_offset: devOffset, wo_pages: pages };
    writeBlock(ram, blockPhys, block);
    ram.commit();
    onProgress?.(total, total);
    return { pages, corrupted, bytes: devOffset + BigInt(tail.length), truncated: true, missingPages: missingPages0, resumed, keptForRetry: true, seconds: (performance.now() - t0) / 1000 };
  }
  block = { ...block, state: DUMP_STATE_WRITTEN, wo_state: WRITEOUT_NONE, wo_dev_offset: devOffset, wo_pages: pages };
  writeBlock(ram, blockPhys, block);
  ram.commit();
  killPoint('writeout done');
  releaseDump(kernel, blockPhys);
  onProgress?.(total, total);
  const missingPages = missing.reduce((a, [s, e]) => a + (e - s), 0n);
  return { pages, corrupted, bytes: devOffset + BigInt(tail.length), truncated: anyMissing, missingPages, resumed, seconds: (performance.now() - t0) / 1000 };
}

/**
 * The dump and arch headers as stage 1 wrote them: the copy in the memdev,
 * or, when a bit flipped in it since, the second copy; each checked
 * against the CRC32 in the config block.
 */
export function savedHeader(kernel: Kernel, block: DumpConfigBlock, memdev: Memdev): Buffer {
  const len = dump_header.size + dump_header_asm.size;
  const first = memdev.read(0n, len);
  if (block.header_crc32 === 0 || (zlib.crc32(first) >>> 0) === block.header_crc32) return first;
  const [a, b] = block.header_copy_pfn;
  if (a !== 0n && b !== 0n) {
    const copy = Buffer.concat([kernel.ram.read(a * PAGE_SIZE_N, PAGE_SIZE), kernel.ram.read(b * PAGE_SIZE_N, PAGE_SIZE)]).subarray(0, len);
    if ((zlib.crc32(copy) >>> 0) === block.header_crc32) return copy;
  }
  throw new CorruptDumpError('the saved dump header and its copy were both damaged in memory since the panic (CRC32 mismatch)', { struct: 'dump_header' });
}

/**
 * After a complete writeout: clears every frame of the saved dump and
 * returns it to the allocator (clear_highpage, then free), then forgets
 * the pending dump. Safe to repeat: only frames still PG_reserved are freed.
 */
export function releaseDump(kernel: Kernel, blockPhys: bigint): bigint {
  const ram = kernel.ram;
  const block = readBlock(ram, blockPhys);
  const memmap = new MemMap(kernel);
  const buddy = new BuddyAllocator(kernel, memmap);
  const frames = savedDumpFrames(ram, blockPhys, block).filter((pfn) => pfn !== blockPhys / PAGE_SIZE_N);
  if (block.live) {
    // A live dump's buffer belongs to this kernel's driver: it goes with the dump.
    for (let i = 0n; i < BigInt(block.dump_buf_pages); i++) frames.push(block.dump_buf_pfn + i);
  }
  let freed = 0n;
  const zero = Buffer.alloc(PAGE_SIZE);
  for (const pfn of new Set(frames)) {
    if ((memmap.get(pfn).flags & pageFlag(PG_reserved)) === 0n) continue;
    ram.write(pfn * PAGE_SIZE_N, zero);
    memmap.set(pfn, blankPage());
    buddy.free(pfn, 0);
    freed++;
    // Not a commit point: killed here, the step rolls back to 'written out' and the release starts over.
    if (freed % 4096n === 0n) { ram.flush(); killPoint('release'); }
  }
  ram.flush();
  killPoint('frames released');
  kernel.writeU64('crashdump_addr', CRASHDUMP_ADDR_NONE);
  const cfg = kernel.readStruct(dump_config, 'dump_config');
  if (cfg.dump_addr === Kernel.__va(blockPhys)) kernel.writeStruct(dump_config, 'dump_config', { ...cfg, dump_addr: 0n, active: 0 });
  const blockPfn = blockPhys / PAGE_SIZE_N;
  if (memmap.get(blockPfn).flags & pageFlag(PG_reserved)) {
    ram.write(blockPhys, zero);
    memmap.set(blockPfn, blankPage());
    buddy.free(blockPfn, 0);
    freed++;
  }
  ram.flush();
  return freed;
}

