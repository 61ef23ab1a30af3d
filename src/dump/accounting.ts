/**
 * Where every frame of the crashed machine's RAM went: saved in the dump,
 * saved but damaged, missing (by reason), the dumper's own, or not selected
 * by the dump level. The first four come from the dump's records and its
 * listed ranges; "not selected" is counted independently, from the page
 * types of the dump's own mem_map, so the sum is a check, not a remainder.
 */
import type { PageType } from '../kernel/index.js';
import { DUMP_MASK_KERN, DUMP_MASK_UNUSED, DUMP_MASK_USED } from './lkcd/constants.js';

/** The dump-level mask that selects each page type (the kern, used and unused passes of dump_filters.c). */
export const DUMP_MASK_OF_TYPE: Readonly<Record<PageType, number>> = {
  reserved: DUMP_MASK_KERN, slab: DUMP_MASK_KERN, kernel: DUMP_MASK_KERN,
  cache: DUMP_MASK_USED, anon: DUMP_MASK_USED, free: DUMP_MASK_UNUSED,
};

/**
 * Frames of types the dump level `level` (dh_dump_level, the passes that
 * were saved) does not select, less the frames listed as a dropped pass:
 * stage 1 drops a pass by taking its mask out of dh_dump_level, and lists
 * its frames missing instead.
 */
export function notSelectedFrames(counts: Readonly<Record<PageType, number>>, level: number, droppedFrames: number): number {
  let n = 0;
  for (const [type, mask] of Object.entries(DUMP_MASK_OF_TYPE) as Array<[PageType, number]>) {
    if ((level & mask) === 0) n += counts[type];
  }
  return n - droppedFrames;
}

/** A range as the index lists it. */
export interface AccountedRange {
  start_pfn: bigint;
  end_pfn: bigint;
  reason?: string;
}

export interface FrameAccount {
  /** dh_memory_size. */
  memory: number;
  saved: number;
  damaged: number;
  /** Missing frames by reason. */
  missing: Record<string, number>;
  missingTotal: number;
  dumper: number;
  /** null when the dump's mem_map could not be read. */
  notSelected: number | null;
  /** saved + damaged + missing + dumper + not selected. */
  sum: number;
}

/** Adds the categories up; `ranges` are the listed ranges (missing, 'dumper', 'damaged'). */
export function accountFrames(memory: number, saved: number, ranges: readonly AccountedRange[], notSelected: number | null): FrameAccount {
  const missing: Record<string, number> = {};
  let dumper = 0;
  let damaged = 0;
  let missingTotal = 0;
  for (const r of ranges) {
    const n = Number(r.end_pfn - r.start_pfn);
    const reason = r.reason ?? 'unspecified';
    if (reason === 'dumper') dumper += n;
    else if (reason === 'damaged') damaged += n;
    else {
      missing[reason] = (missing[reason] ?? 0) + n;
      missingTotal += n;
    }
  }
  return { memory, saved, damaged, missing, missingTotal, dumper, notSelected, sum: saved + damaged + missingTotal + dumper + (notSelected ?? 0) };
}
