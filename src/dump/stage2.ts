import zlib from 'node:zlib';
import { CorruptDumpError, InternalError, hex, viewOf, vmcoredd_header } from '../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../machine/index.js';
import {
  blankPage, BuddyAllocator, Kernel, MemMap, PG_reserved, pageFlag, readVmcoreddDump, vmcoreddData, vmcoreddDumps, vmcoreFreeDeviceDumps,
} from '../kernel/index.js';
import { dump_config } from '../kernel/structs/dump_config.js';
import { isDeviceIoError, type BlockDevice } from './device.js';
import { CRASHDUMP_ADDR_NONE, forEachSavedDumpFrame } from './crashdump_boot.js';
import {
  DUMP_BUFFER_SIZE, DUMP_DH_END, DUMP_DH_TRUNCATED, DUMP_HEADER_OFFSET, DUMP_MAGIC_NUMBER, type DumpCompress,
} from './lkcd/constants.js';
import { dump_header, type DumpHeader } from './lkcd/dump_header.js';
import { dump_header_asm } from './lkcd/dump_header_asm.js';
import { dump_page } from './lkcd/dump_page.js';
import { readBlock, writeBlock } from './memdev/block.js';
import {
  DUMP_STATE_SAVED, DUMP_STATE_WRITTEN, WRITEOUT_NONE, WRITEOUT_RUNNING, type DumpConfigBlock, type DumpSegment,
} from './memdev/dump_config_block.js';
import {
  dumperRanges, pfnRanges, loadRecordTable, mergeListedRanges, readMissingList, recordTableExpectations,
} from './memdev/lists.js';
import { Memdev, memdevSource } from './memdev/memdev.js';
import { killPoint } from './faults.js';
import {
  CsumRecords, LKCD_CSUM_F_LOCATOR, LKCD_CSUM_MAX_PFN, LKCD_EXT_LOCATOR_OFFSET, encodeExtensionArea, encodeLocator, lkcd_csum_head,
  lkcd_csum_record, lkcd_ext_header, lkcd_range, recordCrc32, vmcoreddBlockBytes, type LkcdDeviceDumpIn,
} from './formats/lkcd_ext.js';
import { pfnSeen, walkLkcdRecords, type WalkOutcome } from './formats/lkcd_walk.js';
import { DUMP_COMPRESS_GZIP, DUMP_COMPRESS_LZ4, DUMP_COMPRESS_NAMES } from './codecs/index.js';
import { RecordTranscoder } from './writer/transcode.js';
import type { RecordTable } from './memdev/lists.js';

export { loadRecordTable, type RecordTable } from './memdev/lists.js';

/** Device bytes written between progress checkpoints. */
const CHECKPOINT_BYTES = 32n << 20n;
/** Frames the release clears and frees at a time (a run of contiguous ones): 1 MiB. */
const RELEASE_RUN_FRAMES = 256;
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

/** Sorts and merges [start, end) ranges. */
export function mergeRanges(ranges: Array<[bigint, bigint]>): Array<[bigint, bigint]> {
  return mergeListedRanges(ranges.map(([start, end]) => ({ start, end, reason: 'unspecified' as const }))).map((r) => [r.start, r.end]);
}

/** Coalesces pfns into ranges. */
export function pfnsToRanges(pfns: bigint[]): Array<[bigint, bigint]> {
  return pfnRanges(pfns, 'unspecified').map((r) => [r.start, r.end]);
}

/** Bytes of the tail after the last page record: END, the listed ranges, the checksums, the device dumps, the terminator. */
function tailBytes(ranges: number, records: number, devBytes: number): bigint {
  return BigInt(dump_page.size + 3 * lkcd_ext_header.size + lkcd_csum_head.size + ranges * lkcd_range.size + records * lkcd_csum_record.size + devBytes);
}

/**
 * The device dumps this kernel's drivers took at boot (vmcoredd_list):
 * `lkcd config` carries them with the memory dump, in the device-dump
 * block of the extension area.
 */
export function kernelDeviceDumps(kernel: Kernel): LkcdDeviceDumpIn[] {
  return vmcoreddDumps(kernel).map((d) => ({ header: readVmcoreddDump(kernel, d, 0, vmcoredd_header.size), data: vmcoreddData(kernel, d) }));
}

/**
 * For each record in write order, how many [start, end) ranges the pages
 * of it and every record after it form: exactly the ranges the tail must
 * list if the device cuts the dump short there. Computed backwards in one
 * pass (a page joins, splits or extends the runs of its neighbours). A
 * record whose table entry is untrusted counts as a range of its own.
 */
function suffixRangeCounts(order: readonly OrderedSegment[], table: RecordTable | null, maxPfn: bigint): Int32Array | null {
  if (!table) return null;
  // A typed array of the records' frames (-1: untrusted), not a JS array grown a page at a time.
  const pfns = new Int32Array(order.reduce((a, seg) => a + seg.nr_pages, 0));
  let at = 0;
  for (const seg of order) for (let i = seg.firstRecord; i < seg.firstRecord + seg.nr_pages; i++) pfns[at++] = i < table.size.length && table.trusted[i] ? Number(table.address[i] / PAGE_SIZE_N) : -1;
  const counts = new Int32Array(pfns.length + 1);
  // One bit per frame of RAM (trusted: it is this machine's), not a set of every record.
  const bits = new Uint8Array(Number((maxPfn + 8n) / 8n));
  const has = (p: number): boolean => p >= 0 && (p >>> 3) < bits.length && (bits[p >>> 3] & (1 << (p & 7))) !== 0;
  for (let k = pfns.length - 1; k >= 0; k--) {
    const p = pfns[k];
    let c = counts[k + 1] + 1;
    if (p >= 0 && (p >>> 3) < bits.length && !has(p)) {
      if (has(p - 1)) c--;
      if (has(p + 1)) c--;
      bits[p >>> 3] |= 1 << (p & 7);
    }
    counts[k] = c;
  }
  return counts;
}

/**
 * The checksums of the records already on the device, for a writeout that
 * resumes: its records are walked back from the device (the walker's
 * checks apply). null when they do not read back as written, so the
 * writeout starts over.
 */
function checksumsOnDevice(device: BlockDevice, header: DumpHeader, upTo: bigint): CsumRecords | null {
  const src = device.dumpSource(DUMP_HEADER_OFFSET);
  const records = new CsumRecords();
  const outcome: WalkOutcome = { end: null, broken: null, stoppedAt: 0n, records: 0, cutShort: false };
  const limits = { pageSize: PAGE_SIZE, compress: header.dh_dump_compress as DumpCompress, memoryPages: header.dh_memory_size };
  for (const rec of walkLkcdRecords(src, limits, { start: header.dh_dump_buffer_size, limit: upTo - DUMP_HEADER_OFFSET, endRecord: false, outcome })) {
    if (rec.problem) return null;
    records.add(Number(rec.pfn), rec.dp.dp_size, rec.dp.dp_flags, recordCrc32(rec.header, rec.data));
  }
  return outcome.broken ? null : records;
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
  const t0 = performance.now();
  const { release, ...r } = writeoutOrRetry(kernel, blockPhys, device, onProgress);
  if (!release) return r;
  // Once the writeout's own tables are garbage: the frames go back to the allocator.
  releaseDump(kernel, blockPhys);
  return { ...r, seconds: r.seconds === 0 ? 0 : (performance.now() - t0) / 1000 };
}

/** What a writeout did, and whether the dump's frames are to be released now (it is all on the device). */
type WithinResult = WriteoutResult & { release?: boolean };

function writeoutOrRetry(kernel: Kernel, blockPhys: bigint, device: BlockDevice, onProgress?: (done: bigint, total: bigint) => void): WithinResult {
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

function writeoutWithin(kernel: Kernel, blockPhys: bigint, device: BlockDevice, usable: bigint, onProgress?: (done: bigint, total: bigint) => void): WithinResult {
  const t0 = performance.now();
  const ram = kernel.ram;
  let block = readBlock(ram, blockPhys);
  if (block.state === DUMP_STATE_WRITTEN) {
    return { pages: block.wo_pages, corrupted: [], bytes: block.wo_dev_offset, truncated: false, missingPages: 0n, resumed: true, seconds: 0, release: true };
  }
  if (block.state !== DUMP_STATE_SAVED) throw new CorruptDumpError(`dump config block at ${hex(blockPhys)} holds no saved dump`, { struct: 'dump_config_block', field: 'state' });
  const memdev = Memdev.open(ram, block.memdev);
  const headerBytes = savedHeader(kernel, block, memdev);
  const header = dump_header.decode(viewOf(headerBytes), 0);
  if (header.dh_magic_number !== DUMP_MAGIC_NUMBER) throw new CorruptDumpError(`saved dump header magic ${hex(header.dh_magic_number)} is wrong`, { struct: 'dump_header', field: 'dh_magic_number' });
  // Stage 1 may have kept LZ4 pages (ours) for a GZIP dump: they are deflated on the way out,
  // and the device holds a dump of the configured compression only.
  const memCompress = header.dh_dump_compress as DumpCompress;
  const target = block.compress as DumpCompress;
  const transcoding = memCompress !== target;
  if (transcoding && !(memCompress === DUMP_COMPRESS_LZ4 && target === DUMP_COMPRESS_GZIP)) {
    throw new CorruptDumpError(`the saved dump's pages are ${DUMP_COMPRESS_NAMES[memCompress] ?? memCompress} but the dump is configured ${DUMP_COMPRESS_NAMES[target] ?? target}`,
      { struct: 'dump_header', field: 'dh_dump_compress' });
  }
  const deviceHeader: DumpHeader = { ...header, dh_dump_compress: target };
  if (header.dh_memory_size > BigInt(LKCD_CSUM_MAX_PFN)) {
    throw new CorruptDumpError(`dh_memory_size ${header.dh_memory_size} pages is more than the checksums can name`, { struct: 'dump_header', field: 'dh_memory_size' });
  }
  const firstRecord = DUMP_HEADER_OFFSET + header.dh_dump_buffer_size;
  const devdumps = kernelDeviceDumps(kernel);
  const devBytes = vmcoreddBlockBytes(devdumps);
  const order = writeOrder(block);
  const stage1 = readMissingList(ram, block);
  const dumper = dumperRanges(ram, blockPhys, block);
  /** An upper bound of the pages not yet written from segment `segIdx` on (for the tail's room). */
  const pagesFrom: number[] = new Array(order.length + 1).fill(0);
  for (let i = order.length - 1; i >= 0; i--) pagesFrom[i] = pagesFrom[i + 1] + order[i].nr_pages;
  // A checkpoint too close to the end of what the device can take (a device that failed after it)
  // leaves no room for the tail if nothing more fits: such a writeout starts over instead.
  const tailFromCheckpoint = tailBytes(stage1.ranges.length + dumper.length + pagesFrom[Math.min(block.wo_segment, order.length)] + 1, Number(block.wo_pages), devBytes);
  let resumed = block.wo_state === WRITEOUT_RUNNING && block.wo_device_size === device.size && block.wo_dev_offset + tailFromCheckpoint <= usable;
  // A resumed writeout takes the checksums of what it wrote before from the device itself.
  let csum = resumed ? checksumsOnDevice(device, deviceHeader, block.wo_dev_offset) : null;
  if (resumed && (!csum || BigInt(csum.count) !== block.wo_pages)) resumed = false;
  if (!resumed) {
    // A new writeout: whatever the device held is no longer a valid dump from here on.
    device.write(0n, Buffer.alloc(Number(DUMP_HEADER_OFFSET) + DUMP_BUFFER_SIZE));
    device.sync();
    block = { ...block, wo_state: WRITEOUT_RUNNING, wo_segment: 0, wo_seg_offset: 0n, wo_dev_offset: firstRecord, wo_pages: 0n, wo_device_size: device.size };
    writeBlock(ram, blockPhys, block);
    // A commit point of the step: a kill from here on resumes from what RAM says the device holds.
    ram.commit();
    csum = new CsumRecords();
    killPoint('writeout started');
  }
  const records = csum!;
  const total = order.reduce((a, s) => a + (s.end - s.start), 0n);
  // One checksum record a page: room for them all at once, never more than RAM has frames.
  records.reserve(Math.min(records.count + pagesFrom[block.wo_segment], Number(ram.size / PAGE_SIZE_N)));

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
  // The memdev is read through the one record walker, each record framed and checked by the
  // record table: a record whose header or data no longer matches what stage 1 stored (a bit
  // flipped in RAM since) is skipped and named, and the walk goes on.
  const table = loadRecordTable(ram, block);
  const expected = table ? recordTableExpectations(table) : null;
  const suffixRanges = suffixRangeCounts(order, table, ram.size / PAGE_SIZE_N);
  const src = memdevSource(memdev, memdev.handle.last_used_offset, `the dump in memory at ${hex(Kernel.__va(blockPhys))}`);
  const limits = { pageSize: PAGE_SIZE, compress: memCompress, memoryPages: header.dh_memory_size };
  const seen = pfnSeen(ram.size / PAGE_SIZE_N);
  const outView = viewOf(out);
  let si = block.wo_segment;
  let seg = order[si];
  let doneBeforeSeg = 0n;
  /**
   * Puts one page record into the output: `memEnd` is where it ends in the memdev, `writeIdx`
   * its place in write order; `hdr` its header as stored (null: one is encoded).
   */
  const put = (pfn: number, hdr: Uint8Array | null, flags: number, dpSize: number, data: Uint8Array, recCrc: number | null, memEnd: bigint, writeIdx: number): void => {
    const recLen = dump_page.size + dpSize;
    // The tail must still fit if the dump stops here: every later page listed missing.
    const later = suffixRanges ? suffixRanges[Math.min(writeIdx, suffixRanges.length - 1)] : pagesFrom[si] + 1;
    const ranges = stage1.ranges.length + dumper.length + corrupted.length + later;
    if (truncated || devOffset + BigInt(recLen) + tailBytes(ranges, records.count + 1, devBytes) > usable) {
      truncated = true;
      notWritten.push(BigInt(pfn));
      return;
    }
    if (outLen + recLen > out.length) flushOut();
    if (hdr) out.set(hdr, outLen);
    else dump_page.encode({ dp_address: BigInt(pfn) * PAGE_SIZE_N, dp_size: dpSize, dp_flags: flags }, outView, outLen);
    out.set(data, outLen + dump_page.size);
    records.add(pfn, dpSize, flags, recCrc ?? recordCrc32(out.subarray(outLen, outLen + dump_page.size), data));
    outLen += recLen;
    devOffset += BigInt(recLen);
    done = doneBeforeSeg + (memEnd - seg.start);
    pages++;
    sinceCheckpoint += BigInt(recLen);
    if (sinceCheckpoint >= CHECKPOINT_BYTES) {
      checkpoint(si, memEnd - seg.start);
      onProgress?.(done, total);
    }
  };
  const transcoder = transcoding
    ? new RecordTranscoder(memCompress, target, (r) => put(r.pfn, null, r.flags, r.size, r.data, null, BigInt(r.tag), r.tag2), () => undefined)
    : null;
  try {
    for (; si < order.length; si++) {
      seg = order[si];
      doneBeforeSeg = order.slice(0, si).reduce((a, x) => a + (x.end - x.start), 0n);
      let pos = seg.start;
      let recIdx = seg.firstRecord;
      const writePosOfSeg = order.slice(0, si).reduce((a, x) => a + x.nr_pages, 0);
      const resumeAt = seg.start + (si === block.wo_segment ? block.wo_seg_offset : 0n);
      // A resumed writeout finds its record index by the lengths the table gives.
      if (table && resumeAt > pos) {
        while (pos < resumeAt && recIdx < table.size.length) { pos += BigInt(dump_page.size + table.size[recIdx]); recIdx++; }
      } else {
        pos = resumeAt;
      }
      const outcome: WalkOutcome = { end: null, broken: null, stoppedAt: pos, records: 0, cutShort: false };
      for (const rec of walkLkcdRecords(src, limits, { start: pos, limit: seg.end, endRecord: false, firstIndex: recIdx, expected, seen, outcome })) {
        const recLen = BigInt(dump_page.size + rec.data.length);
        pos = rec.offset + recLen;
        if (rec.problem) {
          // Without a trusted table entry nothing says which page this was: dph_valid() refuses it.
          if (!table || !table.trusted[rec.index]) {
            throw new CorruptDumpError(`Invalid page hdr at offset ${hex(rec.offset)} of the saved dump: ${rec.problem.message}`, { struct: 'dump_page', offset: rec.offset }, { cause: rec.problem });
          }
          corrupted.push(rec.pfn);
          continue;
        }
        const writeIdx = writePosOfSeg + rec.index - seg.firstRecord;
        if (transcoder) {
          // Once truncated, nothing more is written: no page is decoded for nothing.
          if (truncated) notWritten.push(rec.pfn);
          else transcoder.add(Number(rec.pfn), rec.dp.dp_flags, rec.data, Number(pos), writeIdx);
        } else {
          put(Number(rec.pfn), rec.header, rec.dp.dp_flags, rec.dp.dp_size, rec.data, rec.recordCrc32, pos, writeIdx);
        }
      }
      transcoder?.flush();
      if (outcome.broken) throw outcome.broken;
      if (!truncated) checkpoint(si + 1, 0n);
    }
  } finally {
    transcoder?.close();
  }
  flushOut();

  // END record (with DUMP_DH_TRUNCATED when pages are missing), the extension area, the 'm' tail.
  const missing = mergeListedRanges([
    ...stage1.ranges,
    ...pfnRanges(corrupted, 'damaged-in-memory'),
    ...pfnRanges(notWritten, 'device'),
  ]);
  const anyMissing = missing.length > 0 || block.truncated !== 0;
  const endRec = Buffer.alloc(dump_page.size);
  dump_page.encode({ dp_address: 0n, dp_size: 0, dp_flags: DUMP_DH_END | (anyMissing ? DUMP_DH_TRUNCATED : 0) }, viewOf(endRec));
  const finalHeader: DumpHeader = { ...deviceHeader, dh_num_pages: Number(pages) };
  const hdrBuf = Buffer.alloc(DUMP_BUFFER_SIZE);
  dump_header.encode(finalHeader, viewOf(hdrBuf), 0);
  headerBytes.copy(hdrBuf, dump_header.size, dump_header.size);
  const headerLen = dump_header.size + dump_header_asm.size;
  const area = encodeExtensionArea({
    ranges: mergeListedRanges([...missing, ...dumper]),
    csum: {
      data_offset: header.dh_dump_buffer_size, header_len: headerLen, header_crc32: zlib.crc32(hdrBuf.subarray(0, headerLen)) >>> 0,
      end_crc32: zlib.crc32(endRec) >>> 0, flags: LKCD_CSUM_F_LOCATOR, records,
    },
    devdumps,
  });
  // Written in its parts: the area is 12 bytes a page, not worth a copy.
  const tailLen = endRec.length + area.length;
  const endOfTail = devOffset + BigInt(tailLen);
  if (endOfTail > usable) throw new InternalError(`stage 2 left ${usable - devOffset} bytes for a tail of ${tailLen}`);
  const bufEnd = ((endOfTail - firstRecord + BigInt(DUMP_BUFFER_SIZE) - 1n) / BigInt(DUMP_BUFFER_SIZE)) * BigInt(DUMP_BUFFER_SIZE) + firstRecord;
  device.write(devOffset, endRec);
  device.write(devOffset + BigInt(endRec.length), area);
  if (bufEnd <= usable) device.write(endOfTail, Buffer.alloc(Number(bufEnd - endOfTail), TAIL_FILL));
  const tailEnd = bufEnd <= usable ? bufEnd : endOfTail;
  device.sync();
  killPoint('end record');

  // The final header, last, with the locator of the extension area: until now the device did not hold a valid dump.
  Buffer.from(encodeLocator(devOffset + BigInt(dump_page.size) - DUMP_HEADER_OFFSET, area)).copy(hdrBuf, LKCD_EXT_LOCATOR_OFFSET);
  device.write(DUMP_HEADER_OFFSET, hdrBuf);
  device.sync();
  killPoint('final header');

  const missingPages = missing.reduce((a, r) => a + (r.end - r.start), 0n);
  if (truncated) {
    // The device cut the dump short: the frames stay reserved in RAM with the dump, so a retry on a
    // bigger or mended device writes it whole.
    block = { ...block, wo_state: WRITEOUT_NONE, wo_dev_offset: devOffset, wo_pages: pages };
    writeBlock(ram, blockPhys, block);
    ram.commit();
    onProgress?.(total, total);
    return { pages, corrupted, bytes: tailEnd, truncated: true, missingPages, resumed, keptForRetry: true, seconds: (performance.now() - t0) / 1000 };
  }
  block = { ...block, state: DUMP_STATE_WRITTEN, wo_state: WRITEOUT_NONE, wo_dev_offset: devOffset, wo_pages: pages };
  writeBlock(ram, blockPhys, block);
  ram.commit();
  killPoint('writeout done');
  onProgress?.(total, total);
  return { pages, corrupted, bytes: tailEnd, truncated: anyMissing, missingPages, resumed, seconds: (performance.now() - t0) / 1000, release: true };
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
  // The block's own frame goes last, below.
  const blockFrame = Number(blockPhys / PAGE_SIZE_N);
  let freed = 0n;
  const zero = Buffer.alloc(PAGE_SIZE);
  // Each frame once, in order (a bitmap of RAM's frames, not a list of every one), so runs of
  // contiguous frames are cleared with one write and freed as whole blocks. The frames are all
  // found (and the lists that lead to them checked) before any is touched.
  const seen = new Uint8Array(Number(ram.size / PAGE_SIZE_N / 8n) + 1);
  const isSet = (f: number): boolean => (seen[f >>> 3] & (1 << (f & 7))) !== 0;
  const mark = (pfn: bigint): void => {
    const f = Number(pfn);
    if (f === blockFrame || isSet(f) || (memmap.flagsOf(pfn) & pageFlag(PG_reserved)) === 0n) return;
    seen[f >>> 3] |= 1 << (f & 7);
  };
  forEachSavedDumpFrame(ram, blockPhys, block, mark);
  // A live dump's buffer belongs to this kernel's driver: it goes with the dump.
  if (block.live) for (let i = 0n; i < BigInt(block.dump_buf_pages); i++) mark(block.dump_buf_pfn + i);
  const zeros = Buffer.alloc(RELEASE_RUN_FRAMES * PAGE_SIZE);
  let sinceFlush = 0;
  for (let f = 0; f < seen.length * 8; f++) {
    if (!isSet(f)) continue;
    let n = 1;
    while (n < RELEASE_RUN_FRAMES && isSet(f + n)) n++;
    ram.write(BigInt(f) * PAGE_SIZE_N, zeros.subarray(0, n * PAGE_SIZE));
    // free() writes the blank struct pages first.
    buddy.freeRange(BigInt(f), n);
    freed += BigInt(n);
    f += n - 1;
    sinceFlush += n;
    // Not a commit point: killed here, the step rolls back to 'written out' and the release starts over.
    if (sinceFlush >= 4096) { sinceFlush = 0; ram.flush(); killPoint('release'); }
  }
  ram.flush();
  killPoint('frames released');
  // The device dumps went out with the dump: kernel 2 lets go of them (and of crashdd's files).
  if (kernel.readU64('elfcorebuf') === 0n) vmcoreFreeDeviceDumps(kernel, buddy);
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

