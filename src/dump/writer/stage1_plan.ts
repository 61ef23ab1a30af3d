/**
 * Stage 1's planner: what each frame is (read once from mem_map), how many
 * frames each pass has and how many of them can never become space, how
 * well each pass compresses (sampled), which passes fit, and the room the
 * kern pass keeps back. Pure arithmetic over one scan; no frame is written.
 */
import { DumpError } from '../../codec/index.js';
import { PAGE_SIZE } from '../../machine/index.js';
import { forEachPageType, type MemMap, type PageType } from '../../kernel/index.js';
import { DUMP_BUFFER_SIZE, DUMP_MASK_KERN, DUMP_MASK_UNUSED, DUMP_MASK_USED } from '../lkcd/constants.js';
import { dump_page } from '../lkcd/dump_page.js';
import {
  DUMP_MAP_SZ, DUMP_PASS_KERN, DUMP_PASS_UNUSED, DUMP_PASS_USER, dump_record_desc,
} from '../memdev/dump_config_block.js';
import { ENCODE_BATCH_PAGES, type BatchEncoder } from './batch_encoder.js';
import type { PfnBitmap } from './pfn_set.js';

/** Pages sampled per pass to estimate how well it compresses (about 1% of a 1 GiB machine). */
export const SAMPLE_PAGES = 2048;
/** Space kept back for the end record, the final padding, and the missing-ranges list. */
export const END_RESERVE = 5 * PAGE_SIZE;
/** passOf[] of a frame that mem_map does not describe. */
export const PASS_NONE = 0xff;

export const PASS_OF: Record<PageType, number> = {
  reserved: DUMP_PASS_KERN, slab: DUMP_PASS_KERN, kernel: DUMP_PASS_KERN,
  cache: DUMP_PASS_USER, anon: DUMP_PASS_USER, free: DUMP_PASS_UNUSED,
};
export const PASS_MASK = [DUMP_MASK_KERN, DUMP_MASK_USED, DUMP_MASK_UNUSED];

/** Bytes of dump data `frames` frames hold once their map pages are paid for (one map page per DUMP_MAP_SZ). */
export function dataBytesOf(frames: number): number {
  return Math.floor(frames * DUMP_MAP_SZ / (DUMP_MAP_SZ + 1)) * PAGE_SIZE;
}

/** What the planner needs to know of a frame: may it become space once saved (or when nobody saves it)? */
export type Releasable = (frame: number, pass: number) => boolean;

export interface Stage1Plan {
  /** The pass of every frame mem_map describes (PASS_NONE elsewhere), one byte a frame. */
  readonly passOf: Uint8Array;
  /** Frames of each pass (the dumper's own excluded), and those of them that can never become space. */
  readonly count: number[];
  readonly countFixed: number[];
  /** Average bytes of a page record of each pass, its record-table descriptor included. */
  readonly avgRecord: number[];
  readonly selected: boolean[];
  readonly dropped: boolean[];
  /** Room the kern pass needs whatever the other passes do (see trySave's reserve rule). */
  readonly kernReserve: number;
  /** Estimated bytes of the selected passes' records, and the bytes stage 1 can fill. */
  readonly needBytes: number;
  readonly capacityBytes: number;
}

/** The pass of every frame, read from mem_map once. */
export function scanPasses(memmap: MemMap, frames: number): Uint8Array {
  if (memmap.maxPfn > BigInt(frames) || memmap.minPfn > memmap.maxPfn) {
    throw new DumpError('CORRUPT', `mem_map covers PFNs ${memmap.minPfn}..${memmap.maxPfn}, beyond the ${frames} frames of RAM (min_low_pfn, max_pfn)`);
  }
  const passOf = new Uint8Array(frames).fill(PASS_NONE);
  forEachPageType(memmap, (pfn, type) => { passOf[Number(pfn)] = PASS_OF[type]; });
  return passOf;
}

export interface PlanInputs {
  passOf: Uint8Array;
  owned: PfnBitmap;
  releasable: Releasable;
  level: number;
  /** Bytes of bootstrap space the memdev holds beyond the header region. */
  bootstrapBytes: number;
  encoder: BatchEncoder;
  /** Reads the page of `frame` into `into` (one page). */
  readPage: (frame: number, into: Buffer) => void;
  say: (line: string) => void;
  passNames: readonly string[];
}

/**
 * Counts each pass, samples its compressibility, and drops the least
 * important passes whose estimate cannot fit: a pass is dropped only when
 * the estimate says so; estimation errors are absorbed by deferring pages,
 * and the kern pass is protected by the reserve.
 */
export function planStage1(inp: PlanInputs): Stage1Plan {
  const { passOf, owned, releasable } = inp;
  const count = [0, 0, 0];
  const countFixed = [0, 0, 0];
  for (let f = 0; f < passOf.length; f++) {
    const p = passOf[f];
    if (p === PASS_NONE || owned.hasFrame(f)) continue;
    count[p]++;
    if (!releasable(f, p)) countFixed[p]++;
  }
  const selected = PASS_MASK.map((m) => (inp.level & m) !== 0);
  // A pass the level does not select is never saved: its pages are not sampled.
  const avgRecord = [0, 1, 2].map((p) => (selected[p] ? sampleRecordBytes(inp, p, count[p]) : 0));
  const capacityBytes = stage1CapacityBytes(inp.bootstrapBytes, count.reduce((a, c, p) => a + c - countFixed[p], 0));
  const need = (p: number): number => Math.ceil(count[p] * avgRecord[p]);
  const planNeed = (): number => [0, 1, 2].reduce((t, p) => (selected[p] ? t + need(p) : t), 0);
  const dropped = [false, false, false];
  for (const p of [DUMP_PASS_UNUSED, DUMP_PASS_USER]) {
    if (selected[p] && planNeed() > capacityBytes) {
      selected[p] = false;
      dropped[p] = true;
      inp.say(`dump: not enough room for the ${inp.passNames[p]} pass (${count[p]} pages, ~${avgRecord[p].toFixed(0)} bytes each): dropped`);
    }
  }
  // The kern pass's pages that never become space (boot region, kexec image), the loss of
  // incompressible ones, and a buffer's worth of working room.
  const kernReserve = Math.ceil(avgRecord[DUMP_PASS_KERN] * countFixed[DUMP_PASS_KERN])
    + DUMP_BUFFER_SIZE + PAGE_SIZE + 2 * dump_page.size * count[DUMP_PASS_KERN];
  return { passOf, count, countFixed, avgRecord, selected, dropped, kernReserve, needBytes: planNeed(), capacityBytes };
}

/**
 * Bytes stage 1 can fill: the bootstrap space, and every frame that becomes
 * space once saved (less the memdev's map pages), less the room kept for
 * the end. Record descriptors come out of the same room: the samples count them.
 */
export function stage1CapacityBytes(bootstrapBytes: number, releasableFrames: number): number {
  return bootstrapBytes + dataBytesOf(releasableFrames) - END_RESERVE;
}

/**
 * Average bytes of a page record of a pass (header, data, record-table
 * descriptor), from evenly spaced sample pages compressed in batches; the
 * estimate (lkcd estimate) uses it as stage 1 does.
 */
export function sampleRecordBytes(inp: Pick<PlanInputs, 'passOf' | 'owned' | 'encoder' | 'readPage'>, pass: number, total: number): number {
  if (total === 0) return 0;
  const stride = Math.max(1, Math.floor(total / SAMPLE_PAGES));
  const picks: number[] = [];
  let seen = 0;
  for (let f = 0; f < inp.passOf.length && picks.length < SAMPLE_PAGES; f++) {
    if (inp.passOf[f] !== pass || inp.owned.hasFrame(f)) continue;
    if (seen++ % stride === 0) picks.push(f);
  }
  if (picks.length === 0) return dump_page.size + PAGE_SIZE;
  const slot = inp.encoder.slots[0];
  let bytes = 0;
  for (let at = 0; at < picks.length; at += ENCODE_BATCH_PAGES) {
    const n = Math.min(ENCODE_BATCH_PAGES, picks.length - at);
    for (let k = 0; k < n; k++) inp.readPage(picks[at + k], slot.input.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE));
    slot.count = n;
    inp.encoder.start(slot);
    inp.encoder.finish(slot);
    for (let k = 0; k < n; k++) bytes += dump_page.size + slot.sizes[k] + dump_record_desc.size;
  }
  return bytes / picks.length;
}
