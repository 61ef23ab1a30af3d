/**
 * Where every frame of RAM went, as `lkcd show N` accounts for it: saved,
 * missing (by reason), the dumper's own frames, not selected by the dump
 * level. Each figure is checked against RAM just before the panic (the
 * snapshot at crashMachine's beforeDump hook: frame types from mem_map and
 * the frames the dumper held), and the sum against dh_memory_size.
 *
 *   - 32M fileserver, KERN, GZIP: frames of user and free pages are "not
 *     selected"; nothing missing.
 *   - 16M idle, ALL_RAM, no compression: a dump that cannot fit in the RAM
 *     it describes, so stage 1 drops the unused pass (its frames listed
 *     "pass-dropped") and whatever else does not fit is "did-not-fit".
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MachineRoot } from '../../src/machine/index.js';
import {
  DUMP_COMPRESS_GZIP, DUMP_COMPRESS_NONE, DUMP_LEVEL_ALL_RAM, DUMP_LEVEL_KERN, dumpLevelMask,
} from '../../src/dump/index.js';
import { lkcdConfig } from '../../lkcd/config.js';
import { cleanFailure, ensureBuilt, ok, panicWithTruth, powerOnScenario, run, type Scenario, type Truth } from '../helpers/lkcd.js';

const MiB = 1n << 20n;
const DUMP_TRUNCATED = 3;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-accounting-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
beforeAll(() => ensureBuilt());

/** The figures of `lkcd show`'s last section, by label. */
function frameFigures(show: string): Record<string, string> {
  const section = show.split('\n\n')[2];
  return Object.fromEntries(section.trimEnd().split('\n').map((l) => {
    const m = /^\s*([A-Za-z ]+): (.*)$/.exec(l)!;
    return [m[1], m[2]];
  }));
}

const lead = (v: string): number => Number(/^(\d+)/.exec(v)![1]);

/** Truth from the snapshot: frames the dumper held, frames the level selects, frames it does not. */
function truthCounts(t: Truth, level: number, droppedMask = 0): { memory: number; dumper: number; selected: number; notSelected: number; inDropped: number } {
  const mask = dumpLevelMask(level);
  let dumper = 0;
  let selected = 0;
  let notSelected = 0;
  let inDropped = 0;
  for (let p = 0; p < Number(t.snap.maxPfn); p++) {
    const m = t.snap.mask[p];
    if (m === 0) dumper++;
    else if (m & mask) {
      selected++;
      if (m & droppedMask) inDropped++;
    } else notSelected++;
  }
  return { memory: Number(t.snap.maxPfn), dumper, selected, notSelected, inDropped };
}

/** The dump-level masks of the passes stage 1 said it dropped (DUMP_MASK_USED 4, DUMP_MASK_UNUSED 8). */
function droppedPasses(console: string[]): number {
  const text = console.join('\n');
  return (/not enough room for the user pass/.test(text) ? 4 : 0) | (/not enough room for the unused pass/.test(text) ? 8 : 0);
}

const CASES: Array<[string, Scenario, 'complete' | 'truncated']> = [
  ['32M fileserver, KERN, GZIP', { mem: 32n * MiB, profile: 'fileserver', seed: 61, level: DUMP_LEVEL_KERN, compress: DUMP_COMPRESS_GZIP }, 'complete'],
  ['16M idle, ALL_RAM, no compression (does not fit)', { mem: 16n * MiB, profile: 'idle', seed: 62, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_NONE }, 'truncated'],
];

describe.each(CASES)('lkcd show accounts for every frame: %s', (name, s, state) => {
  let truth: Truth;
  let dir: string;
  let show: string;
  let figures: Record<string, string>;
  let stage1: string[];

  beforeAll(() => {
    dir = path.join(tmp, name.replace(/\W+/g, '-'));
    powerOnScenario(dir, s);
    lkcdConfig(new MachineRoot(dir));
    const p = panicWithTruth(dir, `accounting: ${name}`);
    truth = p.truth;
    stage1 = p.out.console;
    const config = run('lkcd', dir, ['config']);
    const save = run('lkcd', dir, ['save']);
    if (state === 'complete') {
      ok(config);
      ok(save);
    } else {
      cleanFailure(config, 'lkcd', DUMP_TRUNCATED, 'TRUNCATED');
      cleanFailure(save, 'lkcd', DUMP_TRUNCATED, 'dump 0 is TRUNCATED');
    }
    show = ok(run('lkcd', dir, ['show', '0']));
    figures = frameFigures(show);
  });

  it('each figure is what RAM held at the crash, and they add up to dh_memory_size', () => {
    const t = truthCounts(truth, s.level);
    const saved = lead(figures.saved);
    const missing = lead(figures.missing);
    expect(lead(figures['frames of RAM'])).toBe(t.memory);
    expect(lead(figures.dumper)).toBe(t.dumper);
    expect(lead(figures['not selected'])).toBe(t.notSelected);
    expect(saved + missing).toBe(t.selected);
    expect(lead(figures.damaged)).toBe(0);
    expect(figures.accounted).toBe(`${t.memory} = dh_memory_size`);
    // The dumper's frames are as many as the dumper held at arming: block, maps, bootstrap pages, buffer.
    expect(t.dumper).toBeGreaterThan(64);
    expect(t.dumper).toBeLessThan(128);
  });

  it('missing frames carry their reason', () => {
    const missing = lead(figures.missing);
    if (state === 'complete') {
      expect(missing).toBe(0);
      expect(show).toMatch(/^ *complete: yes$/m);
      expect(show).toMatch(/^ *checksums: verified: every header, record and page matches$/m);
      return;
    }
    expect(missing).toBeGreaterThan(0);
    expect(show).toMatch(new RegExp(`^ *complete: no: TRUNCATED, ${missing} pages missing$`, 'm'));
    const reasons = Object.fromEntries([...figures.missing.matchAll(/([a-z-]+) (\d+)/g)].map((m) => [m[1], Number(m[2])]));
    expect(Object.values(reasons).reduce((a, b) => a + b, 0)).toBe(missing);
    // Stage 1 said which passes it dropped: exactly the frames of those passes are listed for that reason.
    const dropped = droppedPasses(stage1);
    expect(dropped & 8, stage1.join('\n')).toBe(8);
    expect(reasons['pass-dropped']).toBe(truthCounts(truth, s.level, dropped).inDropped);
    expect(Object.keys(reasons).every((r) => ['pass-dropped', 'did-not-fit'].includes(r)), JSON.stringify(reasons)).toBe(true);
  });
});
