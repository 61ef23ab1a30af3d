import zlib from 'node:zlib';
import { DumpError, hex, InternalError, viewOf } from '../../codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N, type PhysicalRam } from '../../machine/index.js';
import {
  bootRegion, Kernel, MemMap, PAGE_OFFSET, uts_namespace,
  type BuddyAllocator, type KernelConfig, type PanicInfo, type PhysRange,
} from '../../kernel/index.js';
import { DUMP_COMPRESS_NAMES, makePageCodec, type PageCodec } from '../codecs/index.js';
import { ENCODE_BATCH_PAGES, makeBatchEncoder, panicCompress, storedBuffer, type BatchEncoder, type EncodeSlot } from './batch_encoder.js';
import {
  DUMP_ASM_MAGIC_NUMBER, DUMP_ASM_VERSION_NUMBER, DUMP_BUFFER_SIZE, DUMP_DH_COMPRESSED, DUMP_DH_END, DUMP_MAGIC_NUMBER,
  DUMP_MAX_NUM_CPUS, DUMP_VERSION_NUMBER, DUMP_MAGIC_LIVE, DUMP_RANGE_DROPPED, DUMP_RANGE_NOFIT,
  type DumpCompress,
} from '../lkcd/constants.js';
import { dump_header, type DumpHeader } from '../lkcd/dump_header.js';
import { dump_header_asm } from '../lkcd/dump_header_asm.js';
import { readBlock, writeBlock } from '../memdev/block.js';
import {
  DUMP_PASS_KERN, DUMP_PASS_NAMES, DUMP_PASS_UNUSED, DUMP_PASS_USER, DUMP_STATE_ARMED, DUMP_STATE_SAVED,
  MAX_DUMP_SEGMENTS, MISSING_RANGES_PER_PAGE, dump_missing_page, recordCheck,
  type DumpConfigBlock,
} from '../memdev/dump_config_block.js';
import { Memdev } from '../memdev/memdev.js';
import { FrameQueue, PfnBitmap } from './pfn_set.js';
import { PASS_MASK, PASS_NONE, planStage1, scanPasses, type Stage1Plan } from './stage1_plan.js';
import { DumpSpace, FRAME_GAIN, RecordSink } from './stage1_sink.js';

/** Bytes of the dump header region at the start of the memdev: dump_header + asm header, page aligned. */
export const STAGE1_HEADER_LEN = Math.ceil((dump_header.size + dump_header_asm.size) / PAGE_SIZE) * PAGE_SIZE;

export type Stage1Mode = 'panic' | 'live';

/** Where stage 1 is, for a progress display (called after each batch of pages is stored). */
export interface Stage1Progress {
  /** The pass running: kern, user or unused. */
  pass: (typeof DUMP_PASS_NAMES)[number];
  /** Pages saved so far, every pass. */
  pagesSaved: number;
  /** Pages the selected passes hold. */
  pagesSelected: number;
}

export interface Stage1Options {
  mode: Stage1Mode;
  panic: PanicInfo;
  /** Configuration of the kernel that will boot next (the loaded kexec image): its boot region is never a destination. */
  nextKernel: KernelConfig;
  /** The allocator, for live dumps that take their frames from it. */
  buddy?: BuddyAllocator;
  /** Console lines (the dump driver prints to the console, not to the log it is saving). */
  console?: (line: string) => void;
  /** Progress, after each batch of pages (cheap: called a few thousand times for 16 GiB). */
  onProgress?: (p: Stage1Progress) => void;
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

/**
 * LZ4 pages are kept only when their estimate needs at most this share of
 * the room: near the bound a sampled estimate can be a few percent short,
 * and deflate's smaller pages then keep the dump whole.
 */
export const LZ4_ROOM_SHARE = 0.9;

/** LKCD runs the passes in reverse: less critical pages free up space for the more critical ones. */
const STAGE1_ORDER = [DUMP_PASS_UNUSED, DUMP_PASS_USER, DUMP_PASS_KERN];
/** The order of the pages that stay where they are, and of the last retries: kernel pages first. */
const FIXED_ORDER = [DUMP_PASS_KERN, DUMP_PASS_USER, DUMP_PASS_UNUSED];

/** Frames the dump driver owns or still needs, which are never saved nor reused. */
export function dumperFrames(ram: PhysicalRam, block: DumpConfigBlock, blockPhys: bigint, extra: Iterable<bigint>): PfnBitmap {
  const owned = new PfnBitmap(ram.size / PAGE_SIZE_N);
  owned.add(blockPhys / PAGE_SIZE_N);
  for (const pfn of Memdev.open(ram, block.memdev).frames()) owned.add(pfn);
  for (let i = 0n; i < BigInt(block.dump_buf_pages); i++) owned.add(block.dump_buf_pfn + i);
  for (const pfn of extra) owned.add(pfn);
  return owned;
}

interface PassCount { selected: number; saved: number; missing: number; bytes: number; dropped: boolean }

/**
 * Reads pages into batches and compresses each batch on the encoder's
 * threads while the next is read and the last is stored: the result of
 * every page goes to `store` in the order the pages were added. Pages of
 * contiguous frames are read in one call. A batch is read before any later
 * batch is stored, and none of its frames is free until its own page is
 * stored, so no page is read after its frame was reused.
 */
class BatchPump {
  private filling: EncodeSlot;
  private inFlight: EncodeSlot | null = null;
  private readonly frames: [Uint32Array, Uint32Array] = [new Uint32Array(ENCODE_BATCH_PAGES), new Uint32Array(ENCODE_BATCH_PAGES)];
  /** The run of contiguous frames added but not read yet: its first frame, its first page in the slot, its length. */
  private runFrame = 0;
  private runAt = 0;
  private runLen = 0;

  constructor(
    private readonly ram: PhysicalRam,
    private readonly encoder: BatchEncoder,
    private readonly store: (frame: number, slot: EncodeSlot, k: number) => void,
  ) {
    this.filling = encoder.slots[0];
    this.filling.count = 0;
  }

  private framesOf(s: EncodeSlot): Uint32Array {
    return this.frames[s === this.encoder.slots[0] ? 0 : 1];
  }

  add(frame: number): void {
    const s = this.filling;
    const k = s.count;
    if (this.runLen > 0 && frame === this.runFrame + this.runLen) {
      this.runLen++;
    } else {
      this.readRun();
      this.runFrame = frame;
      this.runAt = k;
      this.runLen = 1;
    }
    this.framesOf(s)[k] = frame;
    s.count = k + 1;
    if (s.count === ENCODE_BATCH_PAGES) this.launch();
  }

  private readRun(): void {
    if (this.runLen === 0) return;
    const at = this.runAt * PAGE_SIZE;
    this.ram.readAt(this.runFrame * PAGE_SIZE, this.filling.input.subarray(at, at + this.runLen * PAGE_SIZE));
    this.runLen = 0;
  }

  /** Starts the batch being filled; stores the one that was compressing meanwhile. */
  private launch(): void {
    this.readRun();
    const next = this.filling;
    if (next.count === 0) return;
    const done = this.inFlight;
    if (done) this.encoder.finish(done);
    this.encoder.start(next);
    this.inFlight = next;
    if (done) this.storeAll(done);
    // The next batch fills the slot that is not compressing.
    this.filling = next === this.encoder.slots[0] ? this.encoder.slots[1] : this.encoder.slots[0];
    this.filling.count = 0;
  }

  private storeAll(s: EncodeSlot): void {
    const frames = this.framesOf(s);
    for (let k = 0; k < s.count; k++) this.store(frames[k], s, k);
  }

  /** Everything added so far is compressed and stored. */
  drain(): void {
    this.launch();
    const last = this.inFlight;
    if (last) {
      this.inFlight = null;
      this.encoder.finish(last);
      this.storeAll(last);
    }
  }
}

/**
 * Stage 1 of the soft-boot dump (LKCD's dump_overlay_sequencer), run at
 * panic or on Alt+SysRq+d: compresses the selected pages into the memdev,
 * taking its space from frames whose content is already saved or not
 * wanted, never from the next kernel's boot region nor from frames the
 * dumper still needs. Plans first from mem_map and sampled
 * compressibility, dropping the least important passes when everything
 * cannot fit, so kernel pages always come first; whatever still does not
 * fit is recorded as missing.
 */
export function runStage1(kernel: Kernel, blockPhys: bigint, neededFrames: Iterable<bigint>, opts: Stage1Options): Stage1Result {
  const block = readBlock(kernel.ram, blockPhys);
  if (block.state !== DUMP_STATE_ARMED) {
    throw new DumpError('USAGE', `dump: the dump config block at ${hex(PAGE_OFFSET + blockPhys)} holds a dump awaiting writeout; not overwriting it`);
  }
  if (opts.mode === 'live' && !opts.buddy) throw new InternalError('live dump without an allocator');
  const run = new Stage1Run(kernel, blockPhys, block, neededFrames, opts);
  try {
    return run.run();
  } finally {
    run.close();
  }
}

/** One run of stage 1: the planner's figures, the space, the sink, and the per-page rule. */
class Stage1Run {
  private readonly t0 = performance.now();
  private readonly ram: PhysicalRam;
  private readonly live: boolean;
  private readonly say: (line: string) => void;
  /** Frames of the dumper, and frames already saved or taken as space. */
  private readonly owned: PfnBitmap;
  /** Frames the reboot still needs (the kexec image): saved, never reused. */
  private readonly keep: PfnBitmap;
  private readonly boot: PhysRange[];
  /** The boot region as [start, end) byte ranges in numbers. */
  private readonly bootBytes: Array<[number, number]>;
  private readonly memdev: Memdev;
  /** What the pages are kept in: the configured compression, or LZ4 for GZIP (see panicCompress). */
  private compress: DumpCompress;
  private codec: PageCodec;
  private encoder: BatchEncoder;
  private plan!: Stage1Plan;
  private space!: DumpSpace;
  private sink!: RecordSink;
  private readonly figures: PassCount[] = [0, 1, 2].map(() => ({ selected: 0, saved: 0, missing: 0, bytes: 0, dropped: false }));
  private compressed = 0;
  private kernFixedDone = false;
  private readonly deferred = [new FrameQueue(), new FrameQueue(), new FrameQueue()];
  private readonly fixed = [new FrameQueue(), new FrameQueue(), new FrameQueue()];
  private readonly droppedPages = new FrameQueue();
  private selectedTotal = 0;

  constructor(
    private readonly kernel: Kernel,
    private readonly blockPhys: bigint,
    private readonly block: DumpConfigBlock,
    neededFrames: Iterable<bigint>,
    private readonly opts: Stage1Options,
  ) {
    this.ram = kernel.ram;
    this.live = opts.mode === 'live';
    this.say = opts.console ?? ((): void => undefined);
    // The dumper's own frames are not part of the dump; frames the reboot still needs (the loaded
    // kexec image) are saved like any kernel page but never reused.
    this.owned = dumperFrames(this.ram, block, blockPhys, []);
    this.keep = new PfnBitmap(this.ram.size / PAGE_SIZE_N);
    for (const pfn of neededFrames) this.keep.add(pfn);
    this.boot = bootRegion(this.ram.size, opts.nextKernel);
    this.bootBytes = this.boot.map((r) => [Number(r.start), Number(r.end)]);
    this.memdev = Memdev.open(this.ram, block.memdev);
    this.compress = panicCompress(block.compress as DumpCompress);
    this.codec = makePageCodec(this.compress);
    this.encoder = makeBatchEncoder(this.codec, this.compress, this.say);
  }

  /** Pages are kept in `compress` from here on. */
  private useCompress(compress: DumpCompress): void {
    this.encoder.close();
    this.codec.close();
    this.compress = compress;
    this.codec = makePageCodec(compress);
    this.encoder = makeBatchEncoder(this.codec, compress, this.say);
  }

  close(): void {
    this.encoder.close();
    this.codec.close();
  }

  /**
   * Panic: every frame outside the boot region, the dumper's own and the kexec image becomes
   * space once its content is saved (or when nobody will save it). Live: only free frames may,
   * since the system keeps running; they leave the allocator when the dump is done.
   */
  private readonly releasable = (f: number, pass: number): boolean => {
    if (this.owned.hasFrame(f) || this.keep.hasFrame(f) || (this.live && pass !== DUMP_PASS_UNUSED)) return false;
    const at = f * PAGE_SIZE;
    for (const [s, e] of this.bootBytes) if (at >= s && at < e) return false;
    return true;
  };

  run(): Stage1Result {
    const { ram, block } = this;
    const passOf = scanPasses(new MemMap(this.kernel), Number(ram.size / PAGE_SIZE_N));
    const plan = (say: (line: string) => void): Stage1Plan => planStage1({
      passOf, owned: this.owned, releasable: this.releasable, level: block.level,
      bootstrapBytes: Number(block.memdev.last_offset) - STAGE1_HEADER_LEN,
      encoder: this.encoder, say, passNames: DUMP_PASS_NAMES,
      readPage: (f, into) => ram.readAt(f * PAGE_SIZE, into),
    });
    this.plan = plan(this.compress === block.compress ? this.say : () => undefined);
    const p = this.plan;
    if (this.compress !== block.compress && (p.dropped.some(Boolean) || p.needBytes > LZ4_ROOM_SHARE * p.capacityBytes)) {
      // LZ4 pages are larger than deflated ones: when they would cost a pass, or come near the room
      // (where the sampled estimate may be wrong and pages would go missing), deflate at panic.
      const pct = Math.round((100 * p.needBytes) / Math.max(1, p.capacityBytes));
      this.say(`dump: LZ4 pages would not all fit in memory (about ${pct}% of the room); compressing with ${DUMP_COMPRESS_NAMES[block.compress as DumpCompress]} instead`);
      this.useCompress(block.compress as DumpCompress);
      this.plan = plan(this.say);
    }
    const threads = this.encoder.threads;
    this.say(`dump: compressing pages with ${DUMP_COMPRESS_NAMES[this.compress]} on ${threads} thread${threads === 1 ? '' : 's'} (${this.encoder.engine})` +
      (this.compress !== block.compress ? `; the writeout turns them into ${DUMP_COMPRESS_NAMES[block.compress as DumpCompress]}` : ''));
    const { selected, dropped, count } = this.plan;
    for (let p = 0; p < 3; p++) {
      this.figures[p].selected = selected[p] ? count[p] : 0;
      this.figures[p].dropped = dropped[p];
      if (selected[p]) this.selectedTotal += count[p];
    }

    this.space = new DumpSpace(this.memdev, this.owned, this.live);
    // Pages of a dropped pass are missing, and say so exactly; frames nobody will save are space
    // from the start (LKCD's dump_overlay_skip_data).
    for (let f = 0; f < passOf.length; f++) {
      const pass = passOf[f];
      if (pass === PASS_NONE || this.owned.hasFrame(f)) continue;
      if (dropped[pass]) this.droppedPages.push(f);
      if (!selected[pass] && this.releasable(f, pass)) this.space.pool.push(f);
    }
    this.sink = new RecordSink(ram, this.memdev, this.space, { frame: Number(block.dump_buf_pfn), pages: block.dump_buf_pages }, STAGE1_HEADER_LEN);

    this.savePasses();
    this.saveFixed();
    // Once more at the end: the fixed and deferred pages are saved outside the batches.
    this.progress(DUMP_PASS_UNUSED);
    this.sink.closeSegment();
    return this.finish();
  }

  /** Stores one compressed page if there is room; false (page untouched) if not. */
  private trySave(frame: number, pass: number, slot: EncodeSlot, k: number): boolean {
    const flags = slot.flags[k];
    const dpSize = slot.sizes[k];
    // Its descriptor in the record table is counted in room() (framesOwed).
    const size = 16 + dpSize;
    const free = this.sink.room();
    if (size > free) return false;
    const frees = this.releasable(frame, pass);
    const after = free - size + (frees ? FRAME_GAIN : 0);
    // A page that leaves less room than it found must not eat into the kern pass's reserve.
    if (pass !== DUMP_PASS_KERN && !this.kernFixedDone && after < free && after < this.plan.kernReserve) return false;
    this.sink.openSegment(pass);
    this.sink.appendRecord(frame, flags, dpSize, storedBuffer(slot, k), k * PAGE_SIZE, recordCheck(slot.crcs[k]));
    const fig = this.figures[pass];
    fig.saved++;
    fig.bytes += size;
    if (flags === DUMP_DH_COMPRESSED) this.compressed++;
    // Its content is in the buffer: the frame may now hold dump data (dump_overlay_pages_done).
    if (frees) this.space.pool.push(frame);
    this.owned.addFrame(frame);
    this.sink.table.place();
    return true;
  }

  /** A pump whose pages of `pass` are stored, or deferred when there is no room. */
  private pump(pass: number, onSaved?: () => void): BatchPump {
    return new BatchPump(this.ram, this.encoder, (frame, slot, k) => {
      if (this.trySave(frame, pass, slot, k)) onSaved?.();
      else this.deferred[pass].push(frame);
      if (k === slot.count - 1) this.progress(pass);
    });
  }

  private progress(pass: number): void {
    this.opts.onProgress?.({ pass: DUMP_PASS_NAMES[pass], pagesSaved: this.figures.reduce((a, f) => a + f.saved, 0), pagesSelected: this.selectedTotal });
  }

  /**
   * Phase 1: pages whose frames become space once saved, in LKCD's reverse pass order. Pages
   * that never free their frame (boot region, kexec image; in a live dump every page in use)
   * wait, so they cannot drain the room the others would have made.
   */
  private savePasses(): void {
    const { passOf } = this.plan;
    for (const pass of STAGE1_ORDER) {
      if (!this.plan.selected[pass]) continue;
      const pump = this.pump(pass);
      for (let f = 0; f < passOf.length; f++) {
        if (passOf[f] !== pass || this.owned.hasFrame(f)) continue;
        if (!this.releasable(f, pass)) this.fixed[pass].push(f);
        else pump.add(f);
      }
      pump.drain();
      this.retryDeferred(pass);
    }
  }

  /** Phase 2: the pages that stay where they are, kernel pages first; then the last retries. */
  private saveFixed(): void {
    for (const pass of FIXED_ORDER) {
      const pump = this.pump(pass);
      this.fixed[pass].forEachRun((s, e) => { for (let f = s; f < e; f++) pump.add(f); });
      pump.drain();
      this.retryDeferred(pass);
      if (pass === DUMP_PASS_KERN) this.kernFixedDone = true;
    }
    // Room made by later saves may now take pages deferred earlier.
    for (const pass of FIXED_ORDER) this.retryDeferred(pass);
  }

  /** Retries the deferred pages of a pass, in order, as long as a round saves any. */
  private retryDeferred(pass: number): void {
    const list = this.deferred[pass];
    let progress = true;
    while (progress && list.size > 0) {
      progress = false;
      const pending = list.ranges();
      list.clear();
      // Pages that fail again go back on the list through the pump.
      const pump = this.pump(pass, () => { progress = true; });
      for (const [s, e] of pending) for (let f = s; f < e; f++) pump.add(f);
      pump.drain();
    }
  }

  /** What did not fit, the end record, the header, the config block. */
  private finish(): Stage1Result {
    const { ram, block, space, sink, figures, plan } = this;
    const { dropped, selected, count } = plan;
    // Each range keeps why it is missing; neighbours merge only when their reasons agree.
    const missingRanges: Array<{ start: number; end: number; reason: number }> = [];
    for (const pass of FIXED_ORDER) {
      this.deferred[pass].forEachRun((s, e) => {
        missingRanges.push({ start: s, end: e, reason: DUMP_RANGE_NOFIT });
        figures[pass].missing += e - s;
      });
    }
    this.droppedPages.forEachRun((s, e) => missingRanges.push({ start: s, end: e, reason: DUMP_RANGE_DROPPED }));
    for (let p = 0; p < 3; p++) if (dropped[p]) figures[p].missing = count[p];
    missingRanges.sort((a, b) => (a.reason - b.reason) || (a.start - b.start));
    for (let i = missingRanges.length - 1; i > 0; i--) {
      const [a, b] = [missingRanges[i - 1], missingRanges[i]];
      if (a.reason === b.reason && a.end === b.start) {
        a.end = b.end;
        missingRanges.splice(i, 1);
      }
    }

    const recordTableRoot = sink.table.finish();
    const endOffset = sink.position;
    sink.appendEnd(DUMP_DH_END);
    sink.flushPages(true);

    let missingRoot = 0;
    let missingFrames = 0;
    if (missingRanges.length > 0) {
      // One page of the list holds ranges of one reason (dump_missing_page.reason).
      const chunks: Array<typeof missingRanges> = [];
      for (const r of missingRanges) {
        const last = chunks[chunks.length - 1];
        if (last && last[0].reason === r.reason && last.length < MISSING_RANGES_PER_PAGE) last.push(r);
        else chunks.push([r]);
      }
      const frames: number[] = [];
      for (let i = 0; i < chunks.length; i++) {
        const f = space.takeFrame();
        if (f < 0) {
          this.say(`dump: no room for the whole missing-ranges list (${missingRanges.length} ranges)`);
          break;
        }
        frames.push(f);
      }
      frames.forEach((f, i) => {
        const chunk = chunks[i];
        const ranges = Array.from({ length: MISSING_RANGES_PER_PAGE }, (_, j) =>
          (j < chunk.length ? { start: BigInt(chunk[j].start), end: BigInt(chunk[j].end) } : { start: 0n, end: 0n }));
        const page = Buffer.alloc(PAGE_SIZE);
        dump_missing_page.encode({ next_pfn: BigInt(frames[i + 1] ?? 0), count: chunk.length, reason: chunk[0].reason, ranges }, viewOf(page));
        ram.writeAt(f * PAGE_SIZE, page);
      });
      missingRoot = frames[0] ?? 0;
      missingFrames = frames.length;
    }

    const pagesSaved = figures.reduce((a, f) => a + f.saved, 0);
    const pagesMissing = figures.reduce((a, f) => a + f.missing, 0);
    const truncated = pagesMissing > 0 || dropped.some(Boolean);
    const effectiveLevel = (block.level & ~PASS_MASK.reduce((m, pm, p) => (dropped[p] ? m | pm : m), 0)) >>> 0;
    const header = makeHeader(this.kernel, block, this.compress, this.opts.panic, effectiveLevel, BigInt(pagesSaved), this.live);
    const headerBytes = Buffer.alloc(STAGE1_HEADER_LEN);
    dump_header.encode(header, viewOf(headerBytes), 0);
    dump_header_asm.encode(makeAsmHeader(this.opts.panic), viewOf(headerBytes), dump_header.size);
    this.memdev.writePages(0n, headerBytes);
    // A second copy of the header, so a bit flipped in it before the writeout costs nothing.
    const headerCopy: bigint[] = [];
    for (let i = 0; i < STAGE1_HEADER_LEN / PAGE_SIZE; i++) {
      const f = space.takeFrame();
      if (f < 0) break;
      ram.writeAt(f * PAGE_SIZE, headerBytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
      headerCopy.push(BigInt(f));
    }
    if (headerCopy.length < STAGE1_HEADER_LEN / PAGE_SIZE) headerCopy.length = 0;

    // A live dump's frames leave the allocator only now, so every page saved above shows the
    // allocator (mem_map, free lists) as it was when the key was pressed.
    if (this.live) this.opts.buddy!.claim(space.takenFrames());
    const dumpedMask = PASS_MASK.reduce((m, pm, p) => (selected[p] ? m | pm : m), 0);
    const droppedMask = PASS_MASK.reduce((m, pm, p) => (dropped[p] ? m | pm : m), 0);
    const segments = sink.segments;
    const padded = [...segments, ...Array.from({ length: MAX_DUMP_SEGMENTS - segments.length }, () => ({ pass: 0, nr_pages: 0, start: 0n, end: 0n }))];
    const bootEnd = this.boot.reduce((m, r) => (r.end > m ? r.end : m), 0n);
    const memdev = this.memdev;
    writeBlock(ram, this.blockPhys, {
      ...block,
      state: DUMP_STATE_SAVED,
      memdev: memdev.handle,
      header_len: dump_header.size + dump_header_asm.size,
      dump_time_sec: this.opts.panic.timeSec,
      dump_time_usec: this.opts.panic.timeUsec,
      live: this.live ? 1 : 0,
      truncated: truncated ? 1 : 0,
      dumped_passes: dumpedMask,
      dropped_passes: droppedMask,
      nr_segments: segments.length,
      nr_missing_ranges: missingRanges.length,
      segments: padded,
      end_offset: BigInt(endOffset),
      pages_saved: BigInt(pagesSaved),
      pages_missing: BigInt(pagesMissing),
      missing_root: BigInt(missingRoot),
      pages_compressed: BigInt(this.compressed),
      record_table_root: BigInt(recordTableRoot),
      nr_records: BigInt(sink.table.count),
      header_crc32: zlib.crc32(headerBytes.subarray(0, dump_header.size + dump_header_asm.size)) >>> 0,
      _pad2: 0,
      header_copy_pfn: [headerCopy[0] ?? 0n, headerCopy[1] ?? 0n],
      bytes_stored: memdev.handle.last_used_offset,
      boot_physical_start: this.opts.nextKernel.physicalStart,
      boot_region_end: bootEnd,
      panic_string: this.opts.panic.message,
    });
    ram.flush();
    const mapFrames = memdev.handle.nr_map_pages + memdev.handle.nr_indirect;
    const tableFrames = sink.table.frames;
    const big = (f: PassCount): PassFigures => ({ selected: BigInt(f.selected), saved: BigInt(f.saved), missing: BigInt(f.missing), bytes: BigInt(f.bytes), dropped: f.dropped });
    const result: Stage1Result = {
      pagesSaved: BigInt(pagesSaved), pagesMissing: BigInt(pagesMissing), pagesCompressed: BigInt(this.compressed),
      recordBytes: BigInt(figures.reduce((a, f) => a + f.bytes, 0)),
      framesUsed: BigInt(1 + mapFrames + missingFrames + tableFrames + headerCopy.length) + memdev.handle.nr_data_pages,
      metadataFrames: BigInt(1 + mapFrames + STAGE1_HEADER_LEN / PAGE_SIZE + missingFrames + tableFrames + headerCopy.length),
      truncated,
      passes: { kern: big(figures[0]), user: big(figures[1]), unused: big(figures[2]) },
      seconds: (performance.now() - this.t0) / 1000,
      blockPhys: this.blockPhys,
    };
    this.say(`dump: saved ${pagesSaved} pages (${this.compressed} compressed) in ${result.framesUsed} frames` +
      (truncated ? `; TRUNCATED: ${pagesMissing} pages missing${droppedMask ? `, passes dropped: ${DUMP_PASS_NAMES.filter((_, p) => dropped[p]).join(', ')}` : ''}` : ''));
    return result;
  }
}

/** ddev.device_id of the memory dump device (dump_memdev.c): the device stage 1 dumps to. */
const MEMDEV_DEVICE_ID = 0x14;

function makeHeader(kernel: Kernel, block: DumpConfigBlock, compress: DumpCompress, panic: PanicInfo, level: number, pages: bigint, live: boolean): DumpHeader {
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
    // The pages' compression in memory (LZ4 for a GZIP dump: the writeout deflates them).
    dh_dump_compress: compress,
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

