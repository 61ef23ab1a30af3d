/**
 * `lkcd save` and the query commands as an admin runs them: the built
 * binary in a child process with --root in a temporary directory. The
 * machine's two crashes are taken in-process so that RAM just before each
 * panic is known (pages, mem_map counts, the log); everything after is the
 * CLI. Failures must be clean (STYLE section 4): a non-zero sysexits
 * status, exactly one stderr line naming what was wrong, no trace of an
 * uncaught exception, and nothing written that looks like a dump: no new
 * DUMPDIR/N, no leftover .saving-N, bounds, the index and the device
 * unchanged.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MachineRoot, PAGE_SIZE, PAGE_SIZE_N } from '../../src/machine/index.js';
import { PAGE_TYPES, type PageType } from '../../src/kernel/index.js';
import {
  DUMP_COMPRESS_GZIP, DUMP_DH_COMPRESSED, DUMP_DH_RAW, DUMP_HEADER_OFFSET, DUMP_LEVEL_ALL_RAM, dump_header, dump_page, openLkcdFile,
} from '../../src/dump/index.js';
import { lkcdConfig } from '../../lkcd/config.js';
import { hexDump } from '../../lkcd/query.js';
import { hexs, incompressibleStream, type Snapshot } from '../helpers/softboot.js';
import {
  cleanFailure, copyRoot, deviceOf, dumpDirOf, dumpDirState, dumpLikeEntries, ensureBuilt, EX_DATAERR, EX_NOINPUT, EX_USAGE,
  INDEX_FILE_NAME, listJson, modeOf, ok, panicWithTruth, powerOnScenario, recordOffsets, run, runAsync, SAVE_LOCK_NAME, SAVED_FILES,
  setSysconfig, sha256File, sysconfigOf, type Scenario, type Truth,
} from '../helpers/lkcd.js';

const MiB = 1n << 20n;
/** Exit statuses of degraded results (src/cli/exit.ts). */
const DUMP_DAMAGED = 4;
const SCENARIO: Scenario = { mem: 16n * MiB, profile: 'idle', seed: 41, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_GZIP };
const PANICS = ['lkcdclitest alpha: first crash', 'lkcdclitest beta: second crash'] as const;
const SEARCH_WORD = 'lkcdclitest';
const THIRD_PANIC = 'lkcdclitest gamma: third crash, not saved yet';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Two saved dumps (0 and 1). */
const root = path.join(tmp, 'two-dumps');
/** The same, plus a third crash written out to the device but not saved. */
const pending = path.join(tmp, 'pending');
const truths: Truth[] = [];

/** Frames picked for full-page checks lie above the first MiB (real-mode and BIOS-area frames are all alike). */
const FIRST_PICKED_PFN = 0x100;

/** A 16M idle machine has frames of at least this many page types above FIRST_PICKED_PFN. */
const MIN_PAGE_TYPES_PICKED = 4;

/** One frame of each page type that a dump of any level may hold (not the dumper's own). */
function keepOnePerType(snap: Snapshot): bigint[] {
  const out: bigint[] = [];
  for (const t of PAGE_TYPES) {
    const i = snap.types.findIndex((x, p) => x === t && snap.mask[p] !== 0 && p > FIRST_PICKED_PFN);
    if (i >= 0) out.push(BigInt(i));
  }
  return out;
}

/** Panics the machine in `dir` in-process, then `lkcd config` (writeout, re-arm) with the CLI. */
function crashAndWriteOut(dir: string, message: string): Truth {
  const { truth, out } = panicWithTruth(dir, message, keepOnePerType);
  expect(out.after).toBe('kexec');
  expect(ok(run('lkcd', dir, ['config']))).toMatch(/^dump: wrote the dump saved before the soft boot/m);
  return truth;
}

beforeAll(() => {
  ensureBuilt();
  powerOnScenario(root, SCENARIO);
  lkcdConfig(new MachineRoot(root));
  for (const [n, msg] of PANICS.entries()) {
    truths.push(crashAndWriteOut(root, msg));
    expect(ok(run('lkcd', root, ['save']))).toMatch(new RegExp(`^lkcd save: saved dump ${n} to .*complete; panic "${msg}"$`, 'm'));
  }
  copyRoot(root, pending);
  crashAndWriteOut(pending, THIRD_PANIC);
});

const dumpFile = (r: string, n: number): string => path.join(dumpDirOf(r), String(n), `dump.${n}`);

describe('list, search, show, dmesg, read, analyze over two saved dumps', () => {
  it('lkcd list shows both dumps with their panic strings, complete', () => {
    const text = ok(run('lkcd', root, ['list']));
    const rows = text.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^\s+N\s+DESIGN\s+FORMAT\s+TIME \(UTC\)\s+HOST\s+RELEASE\s+PAGES\s+BYTES\s+RATIO\s+STATE\s+SIGNATURE\s+PANIC$/);
    expect(rows).toHaveLength(3);
    for (const [n, msg] of PANICS.entries()) expect(rows[n + 1]).toMatch(new RegExp(`^\\s+${n}\\s+lkcd-softboot\\s+lkcd\\s.*\\scomplete\\s+[0-9a-f]{16}\\s+${msg}$`));
    const json = listJson(root);
    expect(json.map((d) => [d.n, d.panic_string, d.complete])).toEqual(PANICS.map((m, n) => [n, m, true]));
  });

  it('lkcd search finds the panic line in each dump, and only there', () => {
    const lines = ok(run('lkcd', root, ['search', SEARCH_WORD])).trimEnd().split('\n');
    expect(lines).toEqual(PANICS.map((m, n) => expect.stringMatching(new RegExp(`^${n}: \\[\\s*\\d+\\.\\d{6}\\] Kernel panic - not syncing: ${m}$`))));
    const hits = JSON.parse(ok(run('lkcd', root, ['search', SEARCH_WORD, '--json']))) as Array<{ n: number; text: string }>;
    expect(hits.map((h) => [h.n, h.text])).toEqual(PANICS.map((m, n) => [n, `Kernel panic - not syncing: ${m}`]));
  });

  it('lkcd show N prints the header fields dh_magic_number ... dh_dump_buffer_size in order, with the dump\'s values', () => {
    const out = ok(run('lkcd', root, ['show', '1']));
    const keys = out.split('\n').map((l) => /^\s*(dh_\w+): /.exec(l)?.[1]).filter((k): k is string => k !== undefined);
    expect(keys).toEqual(Object.keys(dump_header.offsetOf));
    const field = (k: string): string => new RegExp(`^\\s*${k}: (.*)$`, 'm').exec(out)![1];
    const dump = openLkcdFile(dumpFile(root, 1));
    try {
      const h = dump.header;
      expect(field('dh_magic_number')).toBe('0xa8190173618f23ed  (DUMP_MAGIC_NUMBER)');
      expect(field('dh_version')).toBe('9  (LKCD_DUMP_V9)');
      expect(field('dh_header_size')).toBe(String(dump_header.size));
      expect(field('dh_page_size')).toBe(String(PAGE_SIZE));
      expect(field('dh_num_pages')).toBe(String(h.dh_num_pages));
      expect(field('dh_panic_string')).toBe(PANICS[1]);
      expect(field('dh_utsname_release')).toBe(h.dh_utsname_release);
      expect(field('dh_dump_compress')).toBe('2  (DUMP_COMPRESS_GZIP)');
      expect(field('dh_dump_buffer_size')).toBe(String(h.dh_dump_buffer_size));
    } finally {
      dump.close();
    }
  });

  it('lkcd dmesg N prints the log that was in RAM just before panic N', () => {
    for (const n of [0, 1]) expect(ok(run('lkcd', root, ['dmesg', String(n)])), `dump ${n}`).toBe(truths[n].dmesg);
  });

  it('lkcd read N --pfn P -o F writes the page RAM held before the panic (0600); --paddr --len prints those bytes', () => {
    expect(truths[0].pages.size).toBeGreaterThanOrEqual(MIN_PAGE_TYPES_PICKED);
    // Every picked type from dump 0; two pages of dump 1 (the same frames hold other bytes there).
    for (const n of [0, 1]) {
      for (const [pfn, bytes] of [...truths[n].pages].slice(0, n === 0 ? undefined : 2)) {
        const out = path.join(tmp, `read-${n}-${pfn}`);
        expect(ok(run('lkcd', root, ['read', String(n), '--pfn', hexs(pfn), '-o', out]))).toBe('');
        expect(fs.readFileSync(out).equals(bytes), `dump ${n} pfn ${hexs(pfn)}`).toBe(true);
        expect(modeOf(out)).toBe(0o600);
      }
    }
    const [pfn, bytes] = [...truths[1].pages][1];
    const paddr = pfn * PAGE_SIZE_N + 0x7f0n;
    const shown = ok(run('lkcd', root, ['read', '1', '--paddr', hexs(paddr), '--len', '0x40']));
    expect(shown).toBe(hexDump(paddr, bytes.subarray(0x7f0, 0x830)));
  });

  it('lkcd read of a page the dump does not hold fails with one line naming its address', () => {
    const pfn = [...truths[0].snap.dumper][0];
    cleanFailure(run('lkcd', root, ['read', '0', '--pfn', hexs(pfn)]), 'lkcd', null, hexs(pfn * PAGE_SIZE_N));
  });

  it('lkcd analyze N shows the panic, a task table with pid 0 swapper/0, and memory by page type as mem_map had it', () => {
    for (const n of [0, 1]) {
      const out = ok(run('lkcd', root, ['analyze', String(n)]));
      expect(out).toContain(`panic string: ${PANICS[n]}`);
      expect(out).toMatch(/^\s+PID\s+ST\s+TASK\s+COMM$/m);
      expect(out).toMatch(/^\s+0\s+\S+\s+0x[0-9a-f]+\s+\[swapper\/0\]$/m);
      const section = out.split('memory by page type')[1];
      expect(section).toBeDefined();
      for (const t of PAGE_TYPES) {
        const m = new RegExp(`^\\s+${t}\\s+(\\d+)\\s+[\\d.]+%$`, 'm').exec(section);
        expect(m, `${t} row in:\n${section}`).not.toBeNull();
        expect(BigInt(m![1]), `dump ${n} ${t}`).toBe(truths[n].counts[t as PageType]);
      }
      expect(out).toContain(`Kernel panic - not syncing: ${PANICS[n]}`);
    }
  });

  it('lkcd save writes DUMPDIR, N/ 0700 and dump.N, map.N, kerntypes.N, analysis.N, bounds, the index 0600', () => {
    const dir = dumpDirOf(root);
    expect(modeOf(dir)).toBe(0o700);
    for (const n of [0, 1]) {
      expect(modeOf(path.join(dir, String(n)))).toBe(0o700);
      for (const f of SAVED_FILES(n)) expect(modeOf(path.join(dir, String(n), f)), f).toBe(0o600);
    }
    expect(modeOf(path.join(dir, 'bounds'))).toBe(0o600);
    const indexFiles = fs.readdirSync(dir).filter((f) => f.startsWith(INDEX_FILE_NAME));
    expect(indexFiles).toContain(INDEX_FILE_NAME);
    for (const f of indexFiles) expect(modeOf(path.join(dir, f)), f).toBe(0o600);
    expect(fs.readFileSync(path.join(dir, 'bounds'), 'utf8').trim()).toBe('2');
  });

  it('lkcd reindex rebuilds, from the dump directories alone, an index equal to the original', () => {
    const copy = path.join(tmp, 'reindex');
    copyRoot(root, copy);
    const before = listJson(root);
    const dropIndex = (): void => {
      for (const f of fs.readdirSync(dumpDirOf(copy)).filter((x) => x.startsWith(INDEX_FILE_NAME))) fs.rmSync(path.join(dumpDirOf(copy), f));
    };
    dropIndex();
    // A missing index does not hide the dumps: lkcd list indexes them first and says so in one line.
    const listed = ok(run('lkcd', copy, ['list'])).trimEnd().split('\n');
    expect(listed[0]).toBe(`lkcd list: the index listed no dumps; indexed the 2 found in ${dumpDirOf(copy)} first`);
    expect(listed.slice(2).map((l) => /^\s*(\d+)\s.*\scomplete\s/.exec(l)?.[1])).toEqual(['0', '1']);
    expect(listJson(copy)).toEqual(before);
    dropIndex();
    expect(ok(run('lkcd', copy, ['reindex']))).toBe(`reindexed 2 dumps in ${dumpDirOf(copy)}\n`);
    expect(listJson(copy)).toEqual(before);
    expect(ok(run('lkcd', copy, ['search', SEARCH_WORD])).trimEnd().split('\n')).toHaveLength(2);
    expect(modeOf(path.join(dumpDirOf(copy), INDEX_FILE_NAME))).toBe(0o600);
  });
});

describe('lkcd verify', () => {
  it('passes on both dumps', () => {
    for (const n of [0, 1]) expect(ok(run('lkcd', root, ['verify', String(n)]))).toMatch(new RegExp(`^dump ${n}: \\d+ pages verified .*sha256 matches\\n$`));
  });

  /** Flips one bit in the middle of the data of the first record with `flags` past FIRST_PICKED_PFN; returns its pfn. */
  function flipBit(r: string, flags: number): bigint {
    const file = dumpFile(r, 0);
    const bytes = fs.readFileSync(file);
    const dump = openLkcdFile(file);
    let rec: { pfn: bigint; offset: number; size: number } | undefined;
    try {
      rec = recordOffsets(bytes, dump.dataOffset).find((x) => x.flags === flags && x.pfn > BigInt(FIRST_PICKED_PFN));
    } finally {
      dump.close();
    }
    expect(rec, `a record with dp_flags ${flags}`).toBeDefined();
    const at = rec!.offset + dump_page.size + Math.floor(rec!.size / 2);
    bytes[at] ^= 0x08;
    fs.writeFileSync(file, bytes);
    return rec!.pfn;
  }

  it.each([['compressed', DUMP_DH_COMPRESSED], ['raw', DUMP_DH_RAW]] as const)(
    'a flipped bit in a %s page of dump.N: verify exits 4 (DUMP_DAMAGED) with one line naming the page\'s paddr', (_what, flags) => {
      const copy = path.join(tmp, `flip-${flags}`);
      copyRoot(root, copy);
      const pfn = flipBit(copy, flags);
      const r = run('lkcd', copy, ['verify', '0']);
      cleanFailure(r, 'lkcd', DUMP_DAMAGED, `paddr ${hexs(pfn * PAGE_SIZE_N)}`, 'damaged');
      expect(r.stdout).toMatch(new RegExp(`^dump 0: .*DAMAGED: 1 page fail their checks \\(paddr ${hexs(pfn * PAGE_SIZE_N)}\\)\n$`));
      ok(run('lkcd', copy, ['verify', '1']));
    });
});

describe('lkcd save on a bad dump device, or a bad etc/sysconfig/dump', () => {
  interface BadDevice { name: string; make: (device: string) => void; names: string[] }

  /** The device's dump as bytes, its first record's offset, and its records. */
  function deviceRecords(device: string): { bytes: Buffer; records: ReturnType<typeof recordOffsets> } {
    const bytes = fs.readFileSync(device);
    const bufferSize = bytes.readBigUInt64LE(Number(DUMP_HEADER_OFFSET) + dump_header.offsetOf.dh_dump_buffer_size);
    return { bytes, records: recordOffsets(bytes, DUMP_HEADER_OFFSET + bufferSize) };
  }
  const patchHeader = (device: string, field: keyof typeof dump_header.offsetOf, value: number): void => {
    const fd = fs.openSync(device, 'r+');
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value);
    fs.writeSync(fd, b, 0, 4, Number(DUMP_HEADER_OFFSET) + dump_header.offsetOf[field]);
    fs.closeSync(fd);
  };

  const BAD: BadDevice[] = [
    { name: 'random bytes', names: ['no LKCD dump', 'dh_magic_number'], make: (d) => fs.writeFileSync(d, incompressibleStream(44)(fs.statSync(d).size)) },
    {
      name: 'truncated inside a record\'s page data', names: ['inside the page data'], make: (d) => {
        const { records } = deviceRecords(d);
        const r = records[Math.floor(records.length / 2)];
        fs.truncateSync(d, r.offset + dump_page.size + Math.floor(r.size / 2));
      },
    },
    {
      name: 'truncated inside a record header', names: ['inside the record header'], make: (d) => {
        const { records } = deviceRecords(d);
        fs.truncateSync(d, records[Math.floor(records.length / 3)].offset + Math.floor(dump_page.size / 2));
      },
    },
    { name: 'dh_header_size 743', names: ['dh_header_size'], make: (d) => patchHeader(d, 'dh_header_size', dump_header.size + 1) },
    { name: 'dh_version 7', names: ['dh_version'], make: (d) => patchHeader(d, 'dh_version', 7) },
  ];

  it.each(BAD)('$name: one stderr line, non-zero exit, no new DUMPDIR/N, bounds, index and device unchanged', (bad) => {
    const copy = path.join(tmp, `bad-${bad.name.replace(/\W+/g, '-')}`);
    copyRoot(pending, copy);
    bad.make(deviceOf(copy));
    const before = dumpDirState(copy);
    cleanFailure(run('lkcd', copy, ['save']), 'lkcd', null, deviceOf(copy), ...bad.names);
    expect(dumpDirState(copy)).toEqual(before);
    expect(dumpLikeEntries(copy)).toEqual(['0', '1']);
  });

  it('a page record moved past the end of memory (dp_address = dh_memory_size pages): saved as DAMAGED, exit 4, that page named and read as not present', () => {
    const copy = path.join(tmp, 'bad-record-past-memory');
    copyRoot(pending, copy);
    const d = deviceOf(copy);
    const { bytes, records } = deviceRecords(d);
    const memPages = bytes.readBigUInt64LE(Number(DUMP_HEADER_OFFSET) + dump_header.offsetOf.dh_memory_size);
    const last = records[records.length - 1];
    const fd = fs.openSync(d, 'r+');
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(memPages * PAGE_SIZE_N);
    fs.writeSync(fd, b, 0, 8, last.offset);
    fs.closeSync(fd);
    const r = run('lkcd', copy, ['save']);
    cleanFailure(r, 'lkcd', DUMP_DAMAGED, 'dump 2 is DAMAGED', `PFN ${hexs(last.pfn)}`, 'dp_address');
    expect(r.stdout.split('\n')[0]).toMatch(/^lkcd save: saved dump 2 to .*: \d+ pages, \d+ bytes, DAMAGED \(1 pages damaged\); panic "/);
    expect(r.stdout).toContain(`damaged pages, kept in dump.2 but read as not present: paddr ${hexs(last.pfn * PAGE_SIZE_N)}`);
    const read = run('lkcd', copy, ['read', '2', '--pfn', String(last.pfn)]);
    cleanFailure(read, 'lkcd', EX_DATAERR, 'is not in the dump', 'damaged');
    expect(listJson(copy).map((x) => [x.n, x.state])).toEqual([[0, 'complete'], [1, 'complete'], [2, 'damaged']]);
  });

  it.each([
    ['a value that is not a number', 'DUMP_LEVEL', 'banana'],
    ['a level no driver knows', 'DUMP_LEVEL', '3'],
    ['DUMP_SAVE neither 0 nor 1', 'DUMP_SAVE', 'yes'],
  ])('a malformed etc/sysconfig/dump (%s): lkcd save and lkcd config exit 64 naming the file and key; nothing changes', (_w, key, value) => {
    const copy = path.join(tmp, `conf-${key}-${value}`);
    copyRoot(pending, copy);
    setSysconfig(copy, key, value);
    const ram = path.join(copy, 'lib', 'machine', 'ram');
    const before = { ...dumpDirState(copy), ram: sha256File(ram) };
    for (const cmd of ['save', 'config']) cleanFailure(run('lkcd', copy, [cmd]), 'lkcd', EX_USAGE, sysconfigOf(copy), `${key}=${value}`);
    expect({ ...dumpDirState(copy), ram: sha256File(ram) }).toEqual(before);
  });

  it('a line that is not an assignment: exit 64 naming file and line', () => {
    const copy = path.join(tmp, 'conf-garbage-line');
    copyRoot(pending, copy);
    fs.appendFileSync(sysconfigOf(copy), 'this is not an assignment\n');
    const lines = fs.readFileSync(sysconfigOf(copy), 'utf8').split('\n').length - 1;
    const before = dumpDirState(copy);
    cleanFailure(run('lkcd', copy, ['save']), 'lkcd', EX_USAGE, `${sysconfigOf(copy)}:${lines}`);
    expect(dumpDirState(copy)).toEqual(before);
  });
});

describe('a dump number that does not exist', () => {
  const out = (): string => path.join(tmp, 'no-such-dump.elf');
  it.each([
    ['show', ['show', '99']],
    ['read', ['read', '99', '--pfn', '0']],
    ['verify', ['verify', '99']],
    ['dmesg', ['dmesg', '99']],
    ['analyze', ['analyze', '99']],
    ['export', ['export', '99', '--elf', '-o', 'OUT']],
  ] as const)('lkcd %s 99 exits 66 with one line', (_cmd, args) => {
    const before = dumpDirState(root);
    cleanFailure(run('lkcd', root, args.map((a) => (a === 'OUT' ? out() : a))), 'lkcd', EX_NOINPUT, 'no dump 99');
    expect(fs.existsSync(out())).toBe(false);
    expect(dumpDirState(root)).toEqual(before);
  });

  it('lkcd show of something that is not a number exits 64', () => {
    cleanFailure(run('lkcd', root, ['show', '1x']), 'lkcd', EX_USAGE, '\'1x\' is not a dump number');
  });
});

describe('DUMP_SAVE=0', () => {
  it('lkcd save says so and writes nothing: no DUMPDIR/N, bounds, index and device unchanged', () => {
    const copy = path.join(tmp, 'dump-save-0');
    copyRoot(pending, copy);
    setSysconfig(copy, 'DUMP_SAVE', '0');
    const before = dumpDirState(copy);
    expect(ok(run('lkcd', copy, ['save']))).toMatch(/DUMP_SAVE=0/);
    expect(dumpDirState(copy)).toEqual(before);
    expect(dumpLikeEntries(copy)).toEqual(['0', '1']);
  });
});

describe('two lkcd save at once', () => {
  it('a save while another (a live pid) holds the lock refuses with one line and writes nothing; after it is gone, save completes', async () => {
    const copy = path.join(tmp, 'locked');
    copyRoot(pending, copy);
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      fs.writeFileSync(path.join(dumpDirOf(copy), SAVE_LOCK_NAME), `${holder.pid}\n`, { mode: 0o600 });
      const before = dumpDirState(copy);
      cleanFailure(run('lkcd', copy, ['save']), 'lkcd', null, `pid ${holder.pid}`);
      expect(dumpDirState(copy)).toEqual(before);
    } finally {
      holder.kill('SIGKILL');
      await new Promise((resolve) => holder.once('exit', resolve));
    }
    expect(ok(run('lkcd', copy, ['save']))).toMatch(/^lkcd save: saved dump 2 to /m);
    expect(dumpLikeEntries(copy)).toEqual(['0', '1', '2']);
    expect(fs.existsSync(path.join(dumpDirOf(copy), SAVE_LOCK_NAME))).toBe(false);
  });

  it('two processes started together: one saves, the other refuses or finds it saved; the dump is saved once', async () => {
    const copy = path.join(tmp, 'racing');
    copyRoot(pending, copy);
    const results = await Promise.all([runAsync('lkcd', copy, ['save']), runAsync('lkcd', copy, ['save'])]);
    const saved = results.filter((r) => r.status === 0 && /^lkcd save: saved dump 2 to /m.test(r.stdout));
    expect(saved, JSON.stringify(results)).toHaveLength(1);
    const other = results.find((r) => r !== saved[0])!;
    if (other.status === 0) {
      expect(other.stderr).toBe('');
      expect(other.stdout).toMatch(/already saved as 2|is dump 2; marked saved/);
    } else {
      // The machine lock (exit 75) or, if it got past it, DUMPDIR's save lock turns the second one away.
      const line = cleanFailure(other, 'lkcd', null);
      expect(line).toMatch(/another lkcd save \(pid \d+\)|is busy: pid \d+ is running 'lkcd save'/);
    }
    expect(dumpLikeEntries(copy)).toEqual(['0', '1', '2']);
    expect(listJson(copy).map((d) => d.n)).toEqual([0, 1, 2]);
    expect(ok(run('lkcd', copy, ['save']))).toMatch(/already saved as 2/);
  });
});
