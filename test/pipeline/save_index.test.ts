/**
 * The whole soft-boot pipeline through `lkcd save` over seeds, profiles,
 * RAM sizes, dump levels and codecs (DESIGN section 3; section 5
 * invariant 1 on the saved file): power-on, `lkcd config` (arm, preload
 * kexec), panic (stage 1, kexec boot), `lkcd config` (stage 2 writeout to
 * DUMPDEV), `lkcd save`. RAM just before the panic is the ground truth
 * (frame hashes at crashMachine's beforeDump hook). Every page of dump.N
 * must equal it, the pages must be exactly those the level selects, the
 * SQLite index must point every pfn at its record, reads through the index
 * must return the same bytes, and `lkcd verify N` must pass.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MachineRoot, PAGE_SIZE } from '../../src/machine/index.js';
import { closeSystem, powerOn } from '../../src/kernel/index.js';
import {
  DUMP_COMPRESS_GZIP, DUMP_COMPRESS_NONE, DUMP_COMPRESS_RLE, DUMP_LEVEL_ALL_RAM, DUMP_LEVEL_KERN, DUMP_LEVEL_USED, openLkcdFile,
} from '../../src/dump/index.js';
import { DumpIndex } from '../../src/store/index.js';
import { lkcdConfig } from '../../lkcd/config.js';
import { openIndexedDump, readPhysical } from '../../lkcd/query.js';
import { hashOf, pageHash } from '../helpers/ramdiff.js';
import { hexs } from '../helpers/softboot.js';
import {
  checkAgainstTruth, cleanFailure, dumpDirOf, ensureBuilt, ok, run, runPipeline, sha256File, writeSysconfig, type SavedScenario, type Scenario,
} from '../helpers/lkcd.js';

const MiB = 1n << 20n;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-save-index-'));
beforeAll(() => ensureBuilt());
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Reads through the index per scenario: evenly spaced pfns of the dump. */
const INDEXED_READS = 256;

const SCENARIOS: Array<[string, Scenario]> = [
  ['16M idle seed 101, ALL_RAM, GZIP', { mem: 16n * MiB, profile: 'idle', seed: 101, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_GZIP }],
  ['32M database seed 102, USED, RLE', { mem: 32n * MiB, profile: 'database', seed: 102, level: DUMP_LEVEL_USED, compress: DUMP_COMPRESS_RLE }],
  ['32M fileserver seed 103, KERN, NONE', { mem: 32n * MiB, profile: 'fileserver', seed: 103, level: DUMP_LEVEL_KERN, compress: DUMP_COMPRESS_NONE }],
  ['48M idle seed 104, USED, NONE', { mem: 48n * MiB, profile: 'idle', seed: 104, level: DUMP_LEVEL_USED, compress: DUMP_COMPRESS_NONE }],
  ['64M random seed 105, ALL_RAM, GZIP', { mem: 64n * MiB, profile: 'random', seed: 105, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_GZIP }],
  ['64M fileserver seed 106, ALL_RAM, RLE', { mem: 64n * MiB, profile: 'fileserver', seed: 106, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_RLE }],
  ['128M database seed 107, USED, GZIP', { mem: 128n * MiB, profile: 'database', seed: 107, level: DUMP_LEVEL_USED, compress: DUMP_COMPRESS_GZIP }],
];

describe.each(SCENARIOS)('power-on, config, panic, config, save: %s', (name, s) => {
  let r: SavedScenario;
  let file: string;

  beforeAll(() => {
    r = runPipeline(path.join(tmp, name.replace(/\W+/g, '-')), s, `save-index test: ${name}`);
    file = path.join(dumpDirOf(r.dir), String(r.n), `dump.${r.n}`);
  });

  it('stage 2 wrote the dump out and lkcd save saved it as dump 0', () => {
    expect(r.configLines[0]).toMatch(/^dump: wrote the dump saved before the soft boot at 0x[0-9a-f]+ to .*: \d+ pages, \d+ bytes/);
    expect(r.n).toBe(0);
    expect(r.saveLines.join('\n')).toMatch(/^lkcd save: saved dump 0 to /);
  });

  it('every page of dump.N equals RAM just before the panic; the pages are those the level selects, less what a TRUNCATED dump lists missing', () => {
    expect(checkAgainstTruth(file, r.truth.snap, s.level)).toEqual([]);
    const dump = openLkcdFile(file);
    try {
      expect(dump.header.dh_dump_compress).toBe(s.compress);
      expect(dump.header.dh_panic_string).toBe(`save-index test: ${name}`);
      expect(dump.header.dh_utsname_release).toBe(r.release);
    } finally {
      dump.close();
    }
  });

  it('the index holds the dump once, with its sha256, and a row per page pointing at that page\'s record', () => {
    const index = DumpIndex.open(dumpDirOf(r.dir), { readonly: true });
    const dump = openLkcdFile(file);
    try {
      const list = index.listDumps();
      expect(list.map((d) => d.n)).toEqual([0]);
      const rec = list[0];
      const pfns = [...dump.pages()];
      expect(rec.pages).toBe(pfns.length);
      expect(index.pageCount(0)).toBe(pfns.length);
      expect(rec.sha256).toBe(sha256File(file));
      expect(rec.stored_bytes).toBe(fs.statSync(file).size);
      expect(rec.complete).toBe(!dump.attrs['dump.truncated']);
      expect(rec.panic_string).toBe(`save-index test: ${name}`);
      const wrong = pfns.filter((pfn) => {
        const row = index.pageLocation(0, pfn);
        const want = dump.record(pfn)!;
        return !row || row.offset !== want.offset || row.size !== want.size || row.flags !== want.flags;
      });
      expect(wrong.map(hexs)).toEqual([]);
    } finally {
      dump.close();
      index.close();
    }
  });

  it('pages read through the index (no walk of dump.N) equal RAM just before the panic', () => {
    const o = openIndexedDump(dumpDirOf(r.dir), 0);
    try {
      const { snap } = r.truth;
      const pfns = [...Array(Number(snap.maxPfn)).keys()].map(BigInt).filter((p) => o.dump.record!(p) !== null);
      const stride = Math.max(1, Math.floor(pfns.length / INDEXED_READS));
      const differ: string[] = [];
      for (let i = 0; i < pfns.length; i += stride) {
        const pfn = pfns[i];
        if (!pageHash(readPhysical(o.dump, pfn * BigInt(PAGE_SIZE), PAGE_SIZE)).equals(hashOf(snap.hashes, pfn))) differ.push(hexs(pfn));
      }
      expect(differ).toEqual([]);
      expect(pfns.length).toBe(o.rec.pages);
    } finally {
      o.close();
    }
  });

  it('lkcd verify N passes (a TRUNCATED dump verifies too, and exits 3 saying so)', () => {
    const v = run('lkcd', r.dir, ['verify', '0']);
    const truncated = /TRUNCATED/.test(r.saveLines.join('\n'));
    if (truncated) cleanFailure(v, 'lkcd', 3, 'dump 0 is TRUNCATED');
    else ok(v);
    expect(v.stdout).toMatch(/^dump 0: \d+ pages verified \(\d+ compressed, \d+ raw\), checksums match, sha256 matches/);
  });
});

describe('lkcd config on a small busy machine', () => {
  // DESIGN section 2: RAM from 16 MiB, with every profile. `lkcd config`
  // must arm the dump and preload the kexec kernel there too: a kernel
  // would reclaim page cache for kexec's segment pages rather than fail.
  it('arms and preloads kexec on 16M database, fileserver and random machines', () => {
    const failures: string[] = [];
    for (const profile of ['database', 'fileserver', 'random']) {
      const dir = path.join(tmp, `small-${profile}`);
      const sys = powerOn(new MachineRoot(dir), { mem: 16n * MiB, profile, seed: 1 });
      const release = sys.kernel.release;
      closeSystem(sys);
      writeSysconfig(dir, release, {});
      try {
        const lines = lkcdConfig(new MachineRoot(dir)).lines;
        if (!lines.some((l) => l.startsWith('Preloading kernel for kexec based dumping'))) failures.push(`${profile}: no kexec preload: ${lines.join(' | ')}`);
      } catch (e) {
        failures.push(`16M ${profile} seed 1: ${(e as Error).message}`);
      }
    }
    expect(failures).toEqual([]);
  });
});
