/**
 * framesToRanges (the ranges the booting kernel reserves for a held dump):
 * any order, repeats, gaps, against ranges read off a bitmap of the frames.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { framesToRanges } from '../../../src/dump/crashdump_boot.js';

const PAGE = 4096n;

/** The truth: a bit per frame, then every run of set bits as [start, end) bytes. */
function rangesOfBitmap(frames: readonly number[], max: number): Array<{ start: bigint; end: bigint }> {
  const bits = new Uint8Array(max + 1);
  for (const f of frames) bits[f] = 1;
  const out: Array<{ start: bigint; end: bigint }> = [];
  for (let f = 0; f <= max; f++) {
    if (!bits[f]) continue;
    let e = f;
    while (e <= max && bits[e]) e++;
    out.push({ start: BigInt(f) * PAGE, end: BigInt(e) * PAGE });
    f = e;
  }
  return out;
}

describe('framesToRanges', () => {
  it('coalesces unsorted, repeated frames into sorted byte ranges', () => {
    expect(framesToRanges([5, 3, 4, 4, 10, 0, 9, 3])).toEqual([
      { start: 0n, end: PAGE }, { start: 3n * PAGE, end: 6n * PAGE }, { start: 9n * PAGE, end: 11n * PAGE },
    ]);
    expect(framesToRanges([])).toEqual([]);
  });

  it('equals the runs of a bitmap of the same frames (fast-check)', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 2000 }), { maxLength: 400 }), (xs) => {
      expect(framesToRanges(xs)).toEqual(rangesOfBitmap(xs, 2000));
    }), { seed: 0x5eed, numRuns: 300 });
  });
});
