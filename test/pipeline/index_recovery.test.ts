/**
 * The index never hides a dump and is never rebuilt into something worse
 * than it was (issue 8, item 4):
 *   - a deleted or empty index plus one `lkcd save`: the dumps already in
 *     DUMPDIR/N are indexed first (one line says so) and the new dump
 *     takes the next free N;
 *   - `lkcd reindex` builds the new index beside the old one: killed before
 *     the swap, the old index is whole; a rerun finishes;
 *   - a dump directory whose dump cannot be opened at all is named and
 *     skipped, every other dump kept, exit 4.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MachineRoot } from '../../src/machine/index.js';
import { DUMP_COMPRESS_GZIP, DUMP_LEVEL_KERN } from '../../src/dump/index.js';
import { DumpIndex } from '../../src/store/index.js';
import { lkcdConfig } from '../../lkcd/config.js';
import { lkcdSave } from '../../lkcd/save.js';
import {
  cleanFailure, copyRoot, dumpDirOf, ensureBuilt, INDEX_FILE_NAME, listJson, ok, panicWithTruth, powerOnScenario, run, type Scenario,
} from '../helpers/lkcd.js';

const MiB = 1n << 20n;
const SCENARIO: Scenario = { mem: 16n * MiB, profile: 'idle', seed: 71, level: DUMP_LEVEL_KERN, compress: DUMP_COMPRESS_GZIP };
const DUMP_DAMAGED = 4;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-index-recovery-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Dumps 0 and 1 saved; a third crash written out to the device, not saved. */
const base = path.join(tmp, 'base');
let before: Array<Record<string, unknown>>;

beforeAll(() => {
  ensureBuilt();
  powerOnScenario(base, SCENARIO);
  const root = new MachineRoot(base);
  lkcdConfig(root);
  for (const msg of ['recovery: zero', 'recovery: one', 'recovery: two']) {
    expect(panicWithTruth(base, msg).out.after).toBe('kexec');
    lkcdConfig(root);
    if (msg !== 'recovery: two') expect(lkcdSave(root).degraded).toBeUndefined();
  }
  before = listJson(base);
  expect(before.map((d) => d.n)).toEqual([0, 1]);
});

/** `lkcd list --json` of a copy of base, its dirs (which the copied index names under base) shown as <root>. */
const listOfCopy = (root: string): Array<Record<string, unknown>> =>
  listJson(root).map((d) => ({ ...d, dir: (d.dir as string).split(base).join('<root>') }));

const indexFiles = (root: string): string[] => fs.readdirSync(dumpDirOf(root)).filter((f) => f.startsWith(INDEX_FILE_NAME));

describe.each([
  ['deleted, with bounds', (root: string): void => { for (const f of indexFiles(root)) fs.rmSync(path.join(dumpDirOf(root), f)); }],
  ['deleted, and bounds too', (root: string): void => {
    for (const f of indexFiles(root)) fs.rmSync(path.join(dumpDirOf(root), f));
    fs.rmSync(path.join(dumpDirOf(root), 'bounds'));
  }],
  ['replaced by an empty index', (root: string): void => {
    for (const f of indexFiles(root)) fs.rmSync(path.join(dumpDirOf(root), f));
    DumpIndex.open(dumpDirOf(root)).close();
  }],
])('an index %s, then one lkcd save', (name, lose) => {
  it('indexes the dumps in DUMPDIR/N first, says so in one line, and saves the new dump as 2', () => {
    const root = path.join(tmp, name.replace(/\W+/g, '-'));
    copyRoot(base, root);
    lose(root);
    const lines = ok(run('lkcd', root, ['save'])).trimEnd().split('\n');
    expect(lines[0]).toBe(`lkcd save: the index listed no dumps; indexed the 2 found in ${dumpDirOf(root)} first`);
    expect(lines[1]).toMatch(new RegExp(`^lkcd save: saved dump 2 to ${dumpDirOf(root)}/2: \\d+ pages, \\d+ bytes, complete; panic "recovery: two"$`));
    // Then the device dumps kernel 2's drivers added (one line), and nothing else.
    expect(lines.slice(2), lines.join('\n')).toEqual(lines.length > 2 ? [expect.stringMatching(/^lkcd save: dump 2 carries \d+ device dumps?, saved in /)] : []);
    expect(lines.length).toBeLessThanOrEqual(3);
    const after = listJson(root);
    expect(after.slice(0, 2)).toEqual(before.map((d) => ({ ...d, dir: (d.dir as string) })));
    expect(after.map((d) => [d.n, d.panic_string, d.state])).toEqual([
      [0, 'recovery: zero', 'complete'], [1, 'recovery: one', 'complete'], [2, 'recovery: two', 'complete'],
    ]);
    expect(fs.readFileSync(path.join(dumpDirOf(root), 'bounds'), 'utf8')).toBe('3\n');
  });
});

describe('lkcd reindex builds beside the old index and swaps it in', () => {
  it('killed after building, before the swap: the old index is whole and lists every dump; a rerun finishes and leaves nothing behind', () => {
    const root = path.join(tmp, 'reindex-killed');
    copyRoot(base, root);
    const oldIndex = fs.readFileSync(path.join(dumpDirOf(root), INDEX_FILE_NAME));
    const killed = run('lkcd', root, ['reindex'], { LKCD_KILL_AT: '1' });
    expect(killed.signal).toBe('SIGKILL');
    expect(fs.existsSync(path.join(dumpDirOf(root), `${INDEX_FILE_NAME}.new`))).toBe(true);
    expect(fs.readFileSync(path.join(dumpDirOf(root), INDEX_FILE_NAME)).equals(oldIndex)).toBe(true);
    expect(listOfCopy(root)).toEqual(before);
    expect(ok(run('lkcd', root, ['reindex']))).toBe(`reindexed 2 dumps in ${dumpDirOf(root)}\n`);
    expect(indexFiles(root).filter((f) => f.includes('.new'))).toEqual([]);
    expect(listJson(root)).toEqual(before);
  });

  it('a dump that cannot be opened at all is named and skipped; every other dump is kept; exit 4', () => {
    const root = path.join(tmp, 'reindex-unopenable');
    copyRoot(base, root);
    const file = path.join(dumpDirOf(root), '1', 'dump.1');
    fs.truncateSync(file, 1000);
    const r = run('lkcd', root, ['reindex']);
    cleanFailure(r, 'lkcd', DUMP_DAMAGED, '0 dumps indexed as DAMAGED, 1 skipped', 'dump 1 cannot be opened');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`lkcd reindex: dump 1 skipped, it cannot be opened: ${file}: file of 0x3e8 bytes ends before the first page record at offset 0x10000`);
    expect(lines[1]).toBe(`reindexed 1 dump in ${dumpDirOf(root)}; 1 skipped (1)`);
    expect(listOfCopy(root)).toEqual(before.slice(0, 1));
  });
});
