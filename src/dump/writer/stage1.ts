import zlib from 'node:zlib';
import { DumpError, hex, InternalError, viewOf, type ValueOf } from '../../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N, type PhysicalRam } from '../../machine/index.js';
import {
  bootRegion, forEachPageType, inRanges, Kernel, MemMap, PAGE_OFFSET, uts_namespace,
  type BuddyAllocator, type KernelConfig, type PageType, type PanicInfo, type PhysRange,
} from '../../kernel/index.js';
import { makePageCodec, type EncodedPage, type PageCodec } from '../codecs/index.js';
import { ParallelPageCodec } from './parallel_codec.js';
import { WORKER_BATCH } from './compress_shared.js';
import {
  DUMP_ASM_MAGIC_NUMBER, DUMP_ASM_VERSION_NUMBER, DUMP_BUFFER_SIZE, DUMP_DH_COMPRESSED, DUMP_DH_END, DUMP_MAGIC_NUMBER,
  DUMP_MASK_KERN, DUMP_MASK_UNUSED, DUMP_MASK_USED, DUMP_MAX_NUM_CPUS, DUMP_VERSION_NUMBER, DUMP_MAGIC_LIVE,
  DUMP_RANGE_DROPPED, DUMP_RANGE_NOFIT,
  type DumpCompress,
} from '../lkcd/constants.js';
import { dump_header, type DumpHeader } from '../lkcd/dump_header.js';
import { dump_header_asm } from '../lkcd/dump_header_asm.js';
import { dump_page } from '../lkcd/dump_page.js';
import { readBlock, writeBlock } from '../memdev/block.js';
import {
  DUMP_MAP_SZ, DUMP_PASS_KERN, DUMP_PASS_NAMES, DUMP_PASS_UNUSED, DUMP_PASS_USER, DUMP_STATE_ARMED, DUMP_STATE_SAVED,
  MAX_DUMP_SEGMENTS, MISSING_RANGES_PER_PAGE, RECORD_DESCS_PER_PAGE, dump_missing_page, dump_record_desc, dump_record_table_page,
  recordCheck,
  type DumpConfigBlock, type DumpSegment,
} from '../memdev/dump_config_block.js';
import { Memdev } from '../memdev/memdev.js';
import { PfnBitmap, PfnRanges } from './pfn_set.js';

/** Bytes of the dump header region at the start of the memdev: dump_header + asm header, page aligned. */
export const STAGE1_HEADER_LEN = Math.ceil((dump_header.size + dump_header_asm.size) / PAGE_SIZE) * PAGE_SIZE;
/** Space kept back for the end record, the final padding, and the missing-ranges list. */
const END_RESERVE = BigInt(5 * PAGE_SIZE);
/** Pages sampled per pass to estimate how well it compresses (about 1% of a 1 GiB machine). */
const SAMPLE_PAGES = 2048;

export type Stage1Mode = 'panic' | 'live';

export interface Stage1Options {
  mode: Stage1Mode;
  panic: PanicInfo;
  /** Configuration of the kernel that will boot next (the loaded kexec image): its boot region is never a destination. */
  nextKernel: KernelConfig;
  /** The allocator, for live dumps that take their frames from it. */
  buddy?: BuddyAllocator;
  /** Console lines (the dump driver prints to the console, not to the log it is saving). */
  console?: (line: string) => void;
  /** Progress: pages saved so far of those selected, after each batch (for a progress bar; never more often). */
  onProgress?: (done: bigint, total: bigint) => void;
}

export interface PassFigures { selected: bigint; saved: bigint; missing: bigint; bytes: bigint; dropped: boolean }

export interface Stage1Result {
  pagesSaved: bigint;
  pagesMissing: bigint;
  pagesCompressed: bigint;
  /** Bytes of page records (headers and data) in the memdev. */
  recordBytes: bigint;
  /** Frames the stored dump occupies: config block, indirect maps, map pages, data pages, missing list. */
  framesUsed: bigint;
  /** Frames of metadata: the config block, indirect and map pages, header pages, missing list. */
  metadataFrames: bigint;
  truncated: boolean;
  passes: Record<(typeof DUMP_PASS_NAMES)[number], PassFigures>;
  seconds: number;
  blockPhys: bigint;
}

/** The pass (kern, user, unused) that saves each page type. */
export const PASS_OF: Readonly<Record<PageType, number>> = {
  reserved: DUMP_PASS_KERN, slab: DUMP_PASS_KERN, kernel: DUMP_PASS_KERN,
  cache: DUMP_PASS_USER, anon: DUMP_PASS_USER, free: DUMP_PASS_UNUSED,
};
/** The dump-level mask bit of each pass, by pass number. */
export const PASS_MASK = [DUMP_MASK_KERN, DUMP_MASK_USED, DUMP_MASK_UNUSED] as const;
/** LKCD runs the passes in reverse: less critical pages free up space for the more critical ones. */
const STAGE1_ORDER = [DUMP_PASS_UNUSED, DUMP_PASS_USER, DUMP_PASS_KERN];

/** Frames the dump driver owns or still needs, which are never saved nor reused. */
export function dumperFrames(ram: PhysicalRam, block: DumpConfigBlock, blockPhys: bigint, extra: Iterable<bigint>): PfnBitmap {
  const owned = new PfnBitmap(ram.size / PAGE_SIZE_N);
  owned.add(blockPhys / PAGE_SIZE_N);
  for (const pfn of Memdev.open(ram, block.memdev).frames()) owned.add(pfn);
  for (let i = 0n; i < BigInt(block.dump_buf_pages); i++) owned.add(block.dump_buf_pfn + i);
  for (const pfn of extra) owned.add(pfn);
  return owned;
}

/**
 * Stage 1 of the soft-boot dump (LKCD's dump_overlay_sequencer), run at
 * panic or on Alt+SysRq+d: compresses the selected pages one by one
 * through a fixed buffer into the memdev, taking its space from frames
 * whose content is already saved or not wanted, never from the next
 * kernel's boot region nor from frames the dumper still needs. Plans
 * first from mem_map and sampled compressibility, dropping the least
 * important passes when everything cannot fit, so kernel pages always
 * come first; whatever still does not fit is recorded as missing.
 */
export function runStage1(kernel: Kernel, blockPhys: bigint, neededFrames: Iterable<bigint>, opts: Stage1Options): Stage1Result {
  const t0 = performance.now();
  const ram = kernel.ram;
  const say = opts.console ?? ((): void => undefined);
  const block = readBlock(ram, blockPhys);
  if (block.state !== DUMP_STATE_ARMED) {
    throw new DumpError('USAGE', `dump: the dump config block at ${hex(PAGE_OFFSET + blockPhys)} holds a dump awaiting writeout; not overwriting it`);
  }
  const live = opts.mode === 'live';
  if (live && !opts.buddy) throw new InternalError('live dump without an allocator');
  const memmap = new MemMap(kernel);
  // The dumper's own frames are not part of the dump; frames the reboot still needs (the loaded
  // kexec image) are saved like any kernel page but never reused.
  const owned = dumperFrames(ram, block, blockPhys, []);
  const keep = new PfnBitmap(ram.size / PAGE_SIZE_N);
  for (const pfn of neededFrames) keep.add(pfn);
  const boot: PhysRange[] = bootRegion(ram.size, opts.nextKernel);
  const inBoot = (pfn: bigint): boolean => inRanges(pfn * PAGE_SIZE_N, boot);
  const codec = makePageCodec(block.compress as DumpCompress);
  const memdev = Memdev.open(ram, block.memdev);
  const scratch = new Uint8Array(PAGE_SIZE);

  // ---- plan: count each pass, sample its compressibility ----------------------------------
  // Panic: every frame outside the boot region, the dumper's own and the kexec image becomes space
  // once its content is saved (or when nobody will save it). Live: only free frames may, since the
  // system keeps running; they leave the allocator when the dump is done.
  const releasable = (pfn: bigint, pass: number): boolean => !owned.has(pfn) && !keep.has(pfn) && !inBoot(pfn) && (!live || pass === DUMP_PASS_UNUSED);
  const count = [0n, 0n, 0n];
  const countFixed = [0n, 0n, 0n]; // frames of the pass that can never become space
  forEachPageType(memmap, (pfn, type) => {
    if (owned.has(pfn)) return;
    const p = PASS_OF[type];
    count[p]++;
    if (!releasable(pfn, p)) countFixed[p]++;
  });
  const avgRecord = [0, 0, 0].map((_, p) => sampleRecordBytes(kernel, memmap, owned, p, count[p], codec, scratch));
  const selected = PASS_MASK.map((m) => (block.level & m) !== 0);
  const capacityBytes = stage1CapacityBytes(block, count.reduce((a, c, p) => a + c - countFixed[p], 0n));
  const need = (p: number): bigint => BigInt(Math.ceil(Number(count[p]) * avgRecord[p]));
  const planNeed = (): bigint => [0, 1, 2].reduce((t, p) => (selected[p] ? t + need(p) : t), 0n);
  // Drop a pass only when the estimate says it cannot fit; estimation errors are absorbed by
  // deferring pages, and the kern pass is protected by the reserve below.
  const dropped = [false, false, false];
  for (const p of [DUMP_PASS_UNUSED, DUMP_PASS_USER]) {
    if (selected[p] && planNeed() > capacityBytes) {
      selected[p] = false;
      dropped[p] = true;
      say(`dump: not enough room for the ${DUMP_PASS_NAMES[p]} pass (${count[p]} pages, ~${avgRecord[p].toFixed(0)} bytes each): dropped`);
    }
  }
  // Room the kern pass needs whatever the other passes do: its pages that never become space
  // (boot region, kexec image), the loss of incompressible ones, and a buffer's worth of working
  // room. Until those are saved, a less important page may not take the room below this.
  const kernReserve = BigInt(Math.ceil(avgRecord[DUMP_PASS_KERN] * Number(countFixed[DUMP_PASS_KERN])))
    + BigInt(DUMP_BUFFER_SIZE + PAGE_SIZE) + BigInt(2 * dump_page.size) * count[DUMP_PASS_KERN];

  // ---- space: frames that may be reused, and the logical stream -------------------------
  const pool = new PfnRanges();
  const taken: bigint[] = [];
  const addSpace = (): boolean => {
    const pfn = pool.shift();
    if (pfn === null) return false;
    owned.add(pfn);
    memdev.addSpace(pfn);
    taken.push(pfn);
    return true;
  };
  // Pages of a dropped pass are missing, and say so exactly.
  const droppedPages = new PfnRanges();
  forEachPageType(memmap, (pfn, type) => {
    const pass = PASS_OF[type];
    if (owned.has(pfn)) return;
    if (dropped[pass]) droppedPages.push(pfn);
    // Frames nobody will save are space from the start (LKCD's dump_overlay_skip_data).
    if (!selected[pass] && releasable(pfn, pass)) pool.push(pfn);
  });

  const recordTable = new RecordTableWriter(ram, () => {
    const pfn = pool.shift();
    if (pfn === null) return null;
    owned.add(pfn);
    taken.push(pfn);
    return pfn;
  });
  const buffer = Buffer.alloc(DUMP_BUFFER_SIZE);
  let bufStart = BigInt(STAGE1_HEADER_LEN); // logical offset of buffer[0]
  let bufLen = 0;
  /** Pool frames the record table will take for the records so far plus the next one. */
  const tableFramesOwed = (): bigint => {
    const need = (recordTable.count + 1n + BigInt(RECORD_DESCS_PER_PAGE) - 1n) / BigInt(RECORD_DESCS_PER_PAGE);
    return need > recordTable.frames ? need - recordTable.frames : 0n;
  };
  const poolBytes = (): bigint => {
    const owed = tableFramesOwed();
    return pool.size >= owed ? dataBytesOf(pool.size - owed) : -(owed - pool.size) * PAGE_SIZE_N;
  };
  const room = (): bigint => memdev.handle.last_offset + poolBytes() - (bufStart + BigInt(bufLen)) - END_RESERVE;
  const ensureBacked = (end: bigint): void => {
    while (memdev.handle.last_offset < end) {
      if (!addSpace()) throw new InternalError('dump: space accounting allowed a write the pool cannot back');
    }
  };
  const flushPages = (final: boolean): void => {
    const whole = final ? Math.ceil(bufLen / PAGE_SIZE) * PAGE_SIZE : Math.floor(bufLen / PAGE_SIZE) * PAGE_SIZE;
    if (whole === 0) return;
    if (final) buffer.fill(0, bufLen, whole);
    // The buffer lives in the dumper's own frames, as dump_buf does.
    ram.write(block.dump_buf_pfn * PAGE_SIZE_N, buffer.subarray(0, Math.min(whole, block.dump_buf_pages * PAGE_SIZE)));
    ensureBacked(bufStart + BigInt(whole));
    memdev.writePages(bufStart, buffer.subarray(0, whole));
    buffer.copyWithin(0, whole, bufLen);
    bufStart += BigInt(whole);
    bufLen = final ? 0 : bufLen - whole;
  };
  const append = (bytes: Uint8Array): void => {
    let done = 0;
    while (done < bytes.length) {
      const n = Math.min(bytes.length - done, buffer.length - bufLen);
      buffer.set(bytes.subarray(done, done + n), bufLen);
      bufLen += n;
      done += n;
      if (bufLen === buffer.length) flushPages(false);
    }
  };
  const logicalPos = (): bigint => bufStart + BigInt(bufLen);
  // The header region must be backed before any record; bootstrap pages cover it.
  ensureBacked(BigInt(STAGE1_HEADER_LEN));

  // ---- the passes -----------------------------------------------------------------------
  const segments: DumpSegment[] = [];
  const figures = [0, 1, 2].map((p) => ({ selected: selected[p] ? count[p] : 0n, saved: 0n, missing: 0n, bytes: 0n, dropped: dropped[p] }));
  let compressed = 0n;
  const recHdr = Buffer.alloc(dump_page.size);
  const pageBuf = Buffer.alloc(PAGE_SIZE);
  let seg: DumpSegment | null = null;
  const openSegment = (pass: number): void => {
    if (seg && seg.pass === pass) return;
    closeSegment();
    if (segments.length >= MAX_DUMP_SEGMENTS) throw new InternalError('dump: too many segments');
    seg = { pass, nr_pages: 0, start: logicalPos(), end: logicalPos() };
  };
  const closeSegment = (): void => {
    if (seg && seg.nr_pages > 0) { seg.end = logicalPos(); segments.push(seg); }
    seg = null;
  };
  /** Saves one page if there is room; returns false (page untouched) if not. */
  // A saved frame comes back as this much room.
  const frameGain = (PAGE_SIZE_N * BigInt(DUMP_MAP_SZ)) / BigInt(DUMP_MAP_SZ + 1);
  let kernFixedDone = false;
  /** Saves one page if there is room; returns false (page untouched) if not. `pre` is its encoding, if done already. */
  const trySave = (pfn: bigint, pass: number, pre?: EncodedPage): boolean => {
    let enc = pre;
    if (!enc) {
      ram.readInto(pfn * PAGE_SIZE_N, pageBuf);
      enc = codec.encode(pageBuf, scratch);
    }
    // Its descriptor in the record table is counted in room() (tableFramesOwed).
    const size = BigInt(dump_page.size + enc.size);
    const free = room();
    if (size > free) return false;
    const frees = releasable(pfn, pass);
    const after = free - size + (frees ? frameGain : 0n);
    // A page that leaves less room than it found must not eat into the kern pass's reserve.
    if (pass !== DUMP_PASS_KERN && !kernFixedDone && after < free && after < kernReserve) return false;
    openSegment(pass);
    dump_page.encode({ dp_address: pfn * PAGE_SIZE_N, dp_size: enc.size, dp_flags: enc.flags }, viewOf(recHdr));
    append(recHdr);
    append(enc.data);
    recordTable.add(pfn, enc.size, recordCheck(zlib.crc32(enc.data)));
    seg!.nr_pages++;
    figures[pass].saved++;
    figures[pass].bytes += size;
    if (enc.flags === DUMP_DH_COMPRESSED) compressed++;
    // Its content is in the buffer: the frame may now hold dump data (dump_overlay_pages_done).
    if (frees) pool.push(pfn);
    owned.add(pfn);
    recordTable.place();
    return true;
  };
  const deferred: Array<PfnRanges> = [new PfnRanges(), new PfnRanges(), new PfnRanges()];
  const fixed: Array<PfnRanges> = [new PfnRanges(), new PfnRanges(), new PfnRanges()];
  // Phase 1: pages whose frames become space once saved, in LKCD's reverse pass order. Pages
  // that never free their frame (boot region, kexec image; in a live dump every page in use)
  // wait, so they cannot drain the room the others would have made.
  // Pages are compressed in batches on two cores; a batch is read before any of it is saved, and
  // none of its frames is free until its page is saved, so no page is read after being reused.
  const parallel = new ParallelPageCodec(codec, block.compress as DumpCompress);
  const batchPfns: bigint[] = [];
  const batchPages = Array.from({ length: 2 * WORKER_BATCH }, () => Buffer.alloc(PAGE_SIZE));
  const runBatch = (pass: number): void => {
    batchPfns.forEach((pfn, i) => ram.readInto(pfn * PAGE_SIZE_N, batchPages[i]));
    const encoded = parallel.encodeBatch(batchPages.slice(0, batchPfns.length));
    batchPfns.forEach((pfn, i) => { if (!trySave(pfn, pass, encoded[i])) deferred[pass].push(pfn); });
    batchPfns.length = 0;
    opts.onProgress?.(figures.reduce((t, f) => t + f.saved, 0n), figures.reduce((t, f) => t + f.selected, 0n));
  };
  for (const pass of STAGE1_ORDER) {
    if (!selected[pass]) continue;
    forEachPageType(memmap, (pfn, type) => {
      if (PASS_OF[type] !== pass || owned.has(pfn)) return;
      if (!releasable(pfn, pass)) { fixed[pass].push(pfn); return; }
      batchPfns.push(pfn);
      if (batchPfns.length === 2 * WORKER_BATCH) runBatch(pass);
    });
    if (batchPfns.length) runBatch(pass);
    retryDeferred(deferred[pass], pass);
  }
  parallel.close();
  if (parallel.lostWorker) say('dump: the second compressor thread stopped answering; stage 1 went on on one thread');
  // Phase 2: the pages that stay where they are, kernel pages first.
  for (const pass of [DUMP_PASS_KERN, DUMP_PASS_USER, DUMP_PASS_UNUSED]) {
    for (const [s, e] of fixed[pass].ranges()) for (let pfn = s; pfn < e; pfn++) if (!trySave(pfn, pass)) deferred[pass].push(pfn);
    retryDeferred(deferred[pass], pass);
    if (pass === DUMP_PASS_KERN) kernFixedDone = true;
  }
  // Room made by later saves may now take pages deferred earlier.
  for (const pass of [DUMP_PASS_KERN, DUMP_PASS_USER, DUMP_PASS_UNUSED]) retryDeferred(deferred[pass], pass);
  opts.onProgress?.(figures.reduce((t, f) => t + f.saved, 0n), figures.reduce((t, f) => t + f.selected, 0n));
  closeSegment();

  function retryDeferred(list: PfnRanges, pass: number): void {
    let progress = true;
    while (progress && list.size > 0n) {
      progress = false;
      const pending = list.ranges();
      const again = new PfnRanges();
      for (const [s, e] of pending) {
        for (let pfn = s; pfn < e; pfn++) {
          if (trySave(pfn, pass)) progress = true;
          else again.push(pfn);
        }
      }
      while (list.shift() !== null) { /* drain */ }
      for (const [s, e] of again.ranges()) for (let pfn = s; pfn < e; pfn++) list.push(pfn);
    }
  }

  // ---- what did not fit ---------------------------------------------------------------
  // Each range keeps why it is missing; neighbours merge only when their reasons agree.
  const missingRanges: Array<{ start: bigint; end: bigint; reason: number }> = [];
  for (const pass of [DUMP_PASS_KERN, DUMP_PASS_USER, DUMP_PASS_UNUSED]) {
    for (const r of deferred[pass].ranges()) {
      missingRanges.push({ start: r[0], end: r[1], reason: DUMP_RANGE_NOFIT });
      figures[pass].missing += r[1] - r[0];
    }
  }
  for (const r of droppedPages.ranges()) missingRanges.push({ start: r[0], end: r[1], reason: DUMP_RANGE_DROPPED });
  for (let p = 0; p < 3; p++) if (dropped[p]) figures[p].missing = count[p];
  missingRanges.sort((a, b) => (a.reason - b.reason) || (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  for (let i = missingRanges.length - 1; i > 0; i--) {
    const [a, b] = [missingRanges[i - 1], missingRanges[i]];
    if (a.reason === b.reason && a.end === b.start) {
      a.end = b.end;
      missingRanges.splice(i, 1);
    }
  }

  // ---- end record, header, block -----------------------------------------------------------
  const recordTableRoot = recordTable.finish();
  const endOffset = logicalPos();
  dump_page.encode({ dp_address: 0n, dp_size: 0, dp_flags: DUMP_DH_END }, viewOf(recHdr));
  append(recHdr);
  flushPages(true);

  let missingRoot = 0n;
  let missingFrames = 0n;
  if (missingRanges.length > 0) {
    // One page of the list holds ranges of one reason (dump_missing_page.reason).
    const chunks: Array<typeof missingRanges> = [];
    for (const r of missingRanges) {
      const last = chunks[chunks.length - 1];
      if (last && last[0].reason === r.reason && last.length < MISSING_RANGES_PER_PAGE) last.push(r);
      else chunks.push([r]);
    }
    const pfns: bigint[] = [];
    for (let i = 0; i < chunks.length; i++) {
      const pfn = pool.shift();
      if (pfn === null) {
        say(`dump: no room for the whole missing-ranges list (${missingRanges.length} ranges)`);
        break;
      }
      owned.add(pfn);
      taken.push(pfn);
      pfns.push(pfn);
    }
    pfns.forEach((pfn, i) => {
      const chunk = chunks[i];
      const padded = [...chunk.map(({ start, end }) => ({ start, end })), ...Array.from({ length: MISSING_RANGES_PER_PAGE - chunk.length }, () => ({ start: 0n, end: 0n }))];
      const page = Buffer.alloc(PAGE_SIZE);
      dump_missing_page.encode({ next_pfn: pfns[i + 1] ?? 0n, count: chunk.length, reason: chunk[0].reason, ranges: padded }, viewOf(page));
      ram.write(pfn * PAGE_SIZE_N, page);
    });
    missingRoot = pfns[0] ?? 0n;
    missingFrames = BigInt(pfns.length);
  }

  const pagesSaved = figures.reduce((a, f) => a + f.saved, 0n);
  const pagesMissing = figures.reduce((a, f) => a + f.missing, 0n);
  const truncated = pagesMissing > 0n || dropped.some(Boolean);
  const effectiveLevel = (block.level & ~PASS_MASK.reduce((m, pm, p) => (dropped[p] ? m | pm : m), 0)) >>> 0;
  const header = makeHeader(kernel, block, opts.panic, effectiveLevel, pagesSaved, live);
  const headerBytes = Buffer.alloc(STAGE1_HEADER_LEN);
  dump_header.encode(header, viewOf(headerBytes), 0);
  dump_header_asm.encode(makeAsmHeader(opts.panic), viewOf(headerBytes), dump_header.size);
  memdev.writePages(0n, headerBytes);
  // A second copy of the header, so a bit flipped in it before the writeout costs nothing.
  const headerCopy: bigint[] = [];
  for (let i = 0; i < STAGE1_HEADER_LEN / PAGE_SIZE; i++) {
    const pfn = pool.shift();
    if (pfn === null) break;
    owned.add(pfn);
    taken.push(pfn);
    ram.write(pfn * PAGE_SIZE_N, headerBytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
    headerCopy.push(pfn);
  }
  if (headerCopy.length < STAGE1_HEADER_LEN / PAGE_SIZE) headerCopy.length = 0;

  // A live dump's frames leave the allocator only now, so every page saved above shows the
  // allocator (mem_map, free lists) as it was when the key was pressed.
  if (live) opts.buddy!.claim(taken);
  const dumpedMask = PASS_MASK.reduce((m, pm, p) => (selected[p] ? m | pm : m), 0);
  const droppedMask = PASS_MASK.reduce((m, pm, p) => (dropped[p] ? m | pm : m), 0);
  const padded = [...segments, ...Array.from({ length: MAX_DUMP_SEGMENTS - segments.length }, () => ({ pass: 0, nr_pages: 0, start: 0n, end: 0n }))];
  const bootEnd = boot.reduce((m, r) => (r.end > m ? r.end : m), 0n);
  writeBlock(ram, blockPhys, {
    ...block,
    state: DUMP_STATE_SAVED,
    memdev: memdev.handle,
    header_len: dump_header.size + dump_header_asm.size,
    dump_time_sec: opts.panic.timeSec,
    dump_time_usec: opts.panic.timeUsec,
    live: live ? 1 : 0,
    truncated: truncated ? 1 : 0,
    dumped_passes: dumpedMask,
    dropped_passes: droppedMask,
    nr_segments: segments.length,
    nr_missing_ranges: missingRanges.length,
    segments: padded,
    end_offset: endOffset,
    pages_saved: pagesSaved,
    pages_missing: pagesMissing,
    missing_root: missingRoot,
    pages_compressed: compressed,
    record_table_root: recordTableRoot,
    nr_records: recordTable.count,
    header_crc32: zlib.crc32(headerBytes.subarray(0, dump_header.size + dump_header_asm.size)) >>> 0,
    _pad2: 0,
    header_copy_pfn: [headerCopy[0] ?? 0n, headerCopy[1] ?? 0n],
    bytes_stored: memdev.handle.last_used_offset,
    boot_physical_start: opts.nextKernel.physicalStart,
    boot_region_end: bootEnd,
    panic_string: opts.panic.message,
  });
  ram.flush();
  codec.close();
  const mapFrames = BigInt(memdev.handle.nr_map_pages) + BigInt(memdev.handle.nr_indirect);
  const result: Stage1Result = {
    pagesSaved, pagesMissing, pagesCompressed: compressed,
    recordBytes: figures.reduce((a, f) => a + f.bytes, 0n),
    framesUsed: 1n + mapFrames + memdev.handle.nr_data_pages + missingFrames + recordTable.frames + BigInt(headerCopy.length),
    metadataFrames: 1n + mapFrames + BigInt(STAGE1_HEADER_LEN / PAGE_SIZE) + missingFrames + recordTable.frames + BigInt(headerCopy.length),
    truncated,
    passes: { kern: figures[0], user: figures[1], unused: figures[2] },
    seconds: (performance.now() - t0) / 1000,
    blockPhys,
  };
  say(`dump: saved ${pagesSaved} pages (${compressed} compressed) in ${result.framesUsed} frames` +
    (truncated ? `; TRUNCATED: ${pagesMissing} pages missing${droppedMask ? `, passes dropped: ${DUMP_PASS_NAMES.filter((_, p) => dropped[p]).join(', ')}` : ''}` : ''));
  return result;
}

/** ddev.device_id of the memory dump device (dump_memdev.c): the device stage 1 dumps to. */
const MEMDEV_DEVICE_ID = 0x14;

export const RECORD_DESC_BYTES = dump_record_desc.size;
type RecordDesc = ValueOf<typeof dump_record_desc>;

/**
 * Writes the record table. Descriptor pages wait in memory until a frame is
 * free for them (at the start of an all-RAM dump none is, until the first
 * saved page gives its frame back); room() keeps those frames reserved.
 * A page is written once the frame of the page after it is known.
 */
class RecordTableWriter {
  count = 0n;
  frames = 0n;
  private pages: Array<{ entries: RecordDesc[]; pfn: bigint | null }> = [];
  private root = 0n;

  constructor(private readonly ram: PhysicalRam, private readonly takeFrame: () => bigint | null) {}

  add(pfn: bigint, dp_size: number, crc16: number): void {
    let cur = this.pages[this.pages.length - 1];
    if (!cur || cur.entries.length === RECORD_DESCS_PER_PAGE) {
      cur = { entries: [], pfn: null };
      this.pages.push(cur);
    }
    cur.entries.push({ pfn: Number(pfn), dp_size, crc16 });
    this.count++;
  }

  /** Gives waiting pages frames while there are free ones, and writes every page it can. */
  place(final = false): void {
    for (const p of this.pages) {
      if (p.pfn !== null) continue;
      const pfn = this.takeFrame();
      if (pfn === null) break;
      p.pfn = pfn;
      this.frames++;
      if (this.root === 0n) this.root = pfn;
    }
    while (this.pages.length > 0) {
      const [p, next] = this.pages;
      const complete = p.entries.length === RECORD_DESCS_PER_PAGE || final;
      if (p.pfn === null || !complete || (next ? next.pfn === null : !final)) break;
      this.writePage(p.pfn, p.entries, next ? next.pfn! : 0n);
      this.pages.shift();
    }
  }

  private writePage(pfn: bigint, entries: RecordDesc[], next: bigint): void {
    const page = Buffer.alloc(PAGE_SIZE);
    const empty = { pfn: 0, dp_size: 0, crc16: 0 };
    const all = [...entries, ...Array.from({ length: RECORD_DESCS_PER_PAGE - entries.length }, () => empty)];
    dump_record_table_page.encode({ next_pfn: next, count: entries.length, entries_crc32: 0, entries: all }, viewOf(page));
    const body = page.subarray(dump_record_table_page.offsetOf.entries, dump_record_table_page.offsetOf.entries + entries.length * RECORD_DESC_BYTES);
    page.writeUInt32LE(zlib.crc32(body) >>> 0, dump_record_table_page.offsetOf.entries_crc32);
    this.ram.write(pfn * PAGE_SIZE_N, page);
  }

  /** Places and writes the last pages; returns the first page's pfn (0 when no record was saved). */
  finish(): bigint {
    this.place(true);
    if (this.pages.length > 0) throw new InternalError('dump: no frame left for the record table');
    return this.root;
  }
}

/**
 * Bytes stage 1 can fill: the bootstrap pages, and every frame that becomes space once saved
 * (less the memdev's map pages), less the room kept for the end. Record descriptors (16 bytes a
 * page) come out of the same room, so sampleRecordBytes counts them.
 */
export function stage1CapacityBytes(block: DumpConfigBlock, releasableFrames: bigint): bigint {
  const bootstrapBytes = block.memdev.last_offset - BigInt(STAGE1_HEADER_LEN);
  return bootstrapBytes + dataBytesOf(releasableFrames) - END_RESERVE;
}

/** Data bytes `frames` frames give the memdev: one in DUMP_MAP_SZ + 1 becomes a map page. */
function dataBytesOf(frames: bigint): bigint {
  return (frames * BigInt(DUMP_MAP_SZ) / BigInt(DUMP_MAP_SZ + 1)) * PAGE_SIZE_N;
}

/** Bytes a page record of the pass takes in the memdev, averaged over evenly spaced sample pages (its header, data, descriptor). */
export function sampleRecordBytes(kernel: Kernel, memmap: MemMap, owned: PfnBitmap, pass: number, total: bigint, codec: PageCodec, scratch: Uint8Array): number {
  if (total === 0n) return 0;
  const stride = total / BigInt(SAMPLE_PAGES) > 0n ? total / BigInt(SAMPLE_PAGES) : 1n;
  let seen = 0n;
  let sampled = 0;
  let bytes = 0;
  const page = Buffer.alloc(PAGE_SIZE);
  forEachPageType(memmap, (pfn, type) => {
    if (PASS_OF[type] !== pass || owned.has(pfn)) return;
    if (seen++ % stride !== 0n || sampled >= SAMPLE_PAGES) return;
    kernel.ram.readInto(pfn * PAGE_SIZE_N, page);
    bytes += dump_page.size + codec.encode(page, scratch).size + RECORD_DESC_BYTES;
    sampled++;
  });
  return sampled ? bytes / sampled : dump_page.size + PAGE_SIZE;
}

function makeHeader(kernel: Kernel, block: DumpConfigBlock, panic: PanicInfo, level: number, pages: bigint, live: boolean): DumpHeader {
  const uts = kernel.readStruct(uts_namespace, 'init_uts_ns').name;
  return {
    dh_magic_number: DUMP_MAGIC_NUMBER,
    dh_version: DUMP_VERSION_NUMBER,
    dh_header_size: dump_header.size,
    dh_dump_level: level,
    dh_page_size: PAGE_SIZE,
    dh_memory_size: kernel.ram.size / PAGE_SIZE_N,
    dh_memory_start: PAGE_OFFSET,
    // LKCD's lcrash_init_dump_header() stores the magic here (sic); readers ignore it.
    dh_memory_end: live ? DUMP_MAGIC_LIVE : DUMP_MAGIC_NUMBER,
    dh_num_pages: Number(pages),
    dh_panic_string: panic.message,
    dh_time: { tv_sec: panic.timeSec, tv_usec: panic.timeUsec },
    dh_utsname_sysname: uts.sysname,
    dh_utsname_nodename: uts.nodename,
    dh_utsname_release: uts.release,
    dh_utsname_version: uts.version,
    dh_utsname_machine: uts.machine,
    dh_utsname_domainname: uts.domainname,
    dh_current_task: panic.currentTask,
    dh_dump_compress: block.compress,
    dh_dump_flags: block.flags,
    dh_dump_device: MEMDEV_DEVICE_ID,
    dh_dump_buffer_size: BigInt(DUMP_BUFFER_SIZE),
  };
}

function makeAsmHeader(panic: PanicInfo): ReturnType<typeof dump_header_asm.zero> {
  const z = dump_header_asm.zero();
  const regs = Array.from({ length: DUMP_MAX_NUM_CPUS }, (_, i) => (i === 0 ? panic.regs : z.dha_regs));
  const tasks = Array.from({ length: DUMP_MAX_NUM_CPUS }, (_, i) => (i === 0 ? panic.currentTask : 0n));
  return {
    ...z,
    dha_magic_number: DUMP_ASM_MAGIC_NUMBER,
    dha_version: DUMP_ASM_VERSION_NUMBER,
    dha_header_size: dump_header_asm.size,
    dha_regs: panic.regs,
    dha_smp_num_cpus: 1,
    dha_dumping_cpu: 0,
    dha_smp_regs: regs,
    dha_smp_current_task: tasks,
    dha_stack: tasks.map(() => 0n),
    dha_stack_ptr: tasks.map((t, i) => (i === 0 ? panic.regs.sp & ~0x3fffn : t)),
  };
}

