import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { needs } from '../../helpers/tools.js';
import { CorruptDumpError, DumpError } from '../../../src/codec/errors.js';
import {
  APPLICATION_ID, DumpIndex, INDEX_FILE, MIGRATIONS, PstoreIndex, SCHEMA_VERSION, panicSignature,
  type DumpRecord, type LogLine, type MissingRange, type PageRow, type PstoreRecordRow,
} from '../../../src/store/index.js';

const SQLITE3 = '/usr/bin/sqlite3';
const PAGE = 4096;
const DUMP_HEADER_SIZE = 0x10000n;
const PAGE_HEADER_SIZE = 16n;

let dumpdir: string;
const open: DumpIndex[] = [];

beforeEach(() => {
  dumpdir = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-store-'));
});

afterEach(() => {
  for (const idx of open.splice(0)) idx.close();
  fs.rmSync(dumpdir, { recursive: true, force: true });
});

function openIndex(opts?: { readonly?: boolean }): DumpIndex {
  const idx = DumpIndex.open(dumpdir, opts);
  open.push(idx);
  return idx;
}

/** A record whose every field differs from its neighbours' and from defaults. */
function record(n: number, over: Partial<DumpRecord> = {}): DumpRecord {
  const sig = panicSignature('sysrq triggered crash', 'sysrq_handle_crash+0x16/0x20');
  return {
    n,
    dir: path.join(dumpdir, String(n)),
    time_sec: 1_700_000_000 + n,
    time_usec: 123_456,
    host: 'simbox',
    release: '5.4.0-lkcd',
    version: '#1 SMP Tue Jan 1 00:00:00 UTC 2030',
    machine: 'x86_64',
    panic_string: 'sysrq triggered crash',
    level: 0x7,
    compress: 2,
    flags: 0x80000002,
    pages: 3,
    pages_compressed: 2,
    raw_bytes: 3 * PAGE,
    stored_bytes: 9_999,
    complete: false,
    missing_pages: 5,
    state: 'truncated',
    checksum: 'verified',
    damaged_pages: 0,
    memory_pages: 4096 + n,
    dumper_pages: 98,
    not_selected_pages: 1000 + n,
    sha256: n.toString(16).padStart(2, '0').repeat(32),
    signature: sig.signature,
    signature_text: sig.text,
    saved_at: 1_700_000_100 + n,
    design: 'lkcd-softboot',
    format: 'lkcd',
    file: `dump.${n}`,
    compression: 'gzip',
    rle_convention: null,
    source: '',
    log_error: '',
    notes: '',
    ...over,
  };
}

/** `count` page rows for consecutive pfns from `first`, laid out as in dump.N. */
function* pages(count: number, first = 0n): Generator<PageRow> {
  let offset = DUMP_HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    const size = i % 3 === 0 ? PAGE : 1000 + (i % 1000);
    yield { pfn: first + BigInt(i), offset, size, flags: size === PAGE ? 2 : 1 };
    offset += PAGE_HEADER_SIZE + BigInt(size);
  }
}

function log(...texts: string[]): LogLine[] {
  return texts.map((text, i) => ({ seq: i, ts_nsec: 1_000_000_000n * BigInt(i + 1) + 7n, level: i % 8, text }));
}

const NO_MISSING: MissingRange[] = [];

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('DumpIndex: records', () => {
  it('round-trips every field through listDumps, getDump and findBySha256', () => {
    const idx = openIndex();
    const a = record(1);
    const b = record(2, { complete: true, state: 'complete', checksum: 'unverified', not_selected_pages: null, missing_pages: 0, compress: 0, host: 'other', panic_string: 'x "quoted" \'y\'' });
    expect(idx.addDump(a, pages(3), log('one'), [{ start_pfn: 10n, end_pfn: 15n }])).toEqual({ n: 1, inserted: true });
    expect(idx.addDump(b, pages(3), log('two'), NO_MISSING)).toEqual({ n: 2, inserted: true });

    // same_as is derived when read: neither is identical to an earlier dump.
    const [ra, rb] = [{ ...a, same_as: null }, { ...b, same_as: null }];
    expect(idx.listDumps()).toEqual([ra, rb]);
    expect(idx.getDump(1)).toEqual(ra);
    expect(idx.getDump(2)).toEqual(rb);
    expect(idx.getDump(3)).toBeNull();
    expect(idx.findBySha256(b.sha256)).toEqual(rb);
    expect(idx.findBySha256(b.sha256.toUpperCase())).toEqual(rb);
    expect(idx.findBySha256('ab'.repeat(32))).toBeNull();
    expect(typeof idx.getDump(1)?.complete).toBe('boolean');
  });

  it('returns inserted: false for the same dump (n and sha256) indexed again, and inserts nothing', () => {
    const idx = openIndex();
    idx.addDump(record(1), pages(3), log('a', 'b'), [{ start_pfn: 3n, end_pfn: 8n }]);
    const again = idx.addDump(record(1), pages(5, 100n), log('c'), [{ start_pfn: 9n, end_pfn: 10n }]);
    expect(again).toEqual({ n: 1, inserted: false });
    expect(idx.listDumps().map((d) => d.n)).toEqual([1]);
    expect(idx.pageCount(1)).toBe(3);
    expect(idx.logLines(1)).toHaveLength(2);
    expect(idx.missing(1)).toEqual([{ start_pfn: 3n, end_pfn: 8n, reason: 'unspecified' }]);
    expect(idx.searchLog('c')).toEqual([]);
  });

  it('indexes a dump identical to an earlier one under its own n, with same_as naming the first of them', () => {
    const idx = openIndex();
    const sha = record(1).sha256;
    idx.addDump(record(1), pages(3), log('a', 'b'), NO_MISSING);
    idx.addDump(record(2), pages(2), log('x'), NO_MISSING);
    // Another crash that happened to leave byte-identical memory, then a third.
    expect(idx.addDump(record(4, { sha256: sha }), pages(3, 100n), log('c'), [{ start_pfn: 9n, end_pfn: 10n }])).toEqual({ n: 4, inserted: true });
    expect(idx.addDump(record(6, { sha256: sha.toUpperCase() }), pages(1), [], NO_MISSING)).toEqual({ n: 6, inserted: true });
    expect(idx.listDumps().map((d) => [d.n, d.same_as])).toEqual([[1, null], [2, null], [4, 1], [6, 1]]);
    expect(idx.getDump(4)?.same_as).toBe(1);
    expect(idx.findBySha256(sha)?.n).toBe(1);
    // Each has its own rows.
    expect(idx.pageCount(4)).toBe(3);
    expect(idx.pageLocation(4, 100n)?.pfn).toBe(100n);
    expect(idx.missing(4)).toEqual([{ start_pfn: 9n, end_pfn: 10n, reason: 'unspecified' }]);
    expect(idx.searchLog('c').map((h) => h.n)).toEqual([4]);
    // Removing the first leaves the others pointing at the lowest one left.
    expect(idx.removeDump(1)).toBe(true);
    expect(idx.listDumps().map((d) => [d.n, d.same_as])).toEqual([[2, null], [4, null], [6, 4]]);
  });

  it('throws CORRUPT when n is taken by a different sha256, and changes nothing', () => {
    const idx = openIndex();
    idx.addDump(record(1), pages(3), log('a'), NO_MISSING);
    const other = record(1, { sha256: 'cd'.repeat(32) });
    const err = thrown(() => idx.addDump(other, pages(5), log('b'), NO_MISSING));
    expect(err).toBeInstanceOf(CorruptDumpError);
    expect((err as DumpError).code).toBe('CORRUPT');
    expect((err as Error).message).toContain('dump 1 is already indexed');
    expect(idx.findBySha256(other.sha256)).toBeNull();
    expect(idx.pageCount(1)).toBe(3);
  });

  it('rolls the whole dump back when a page is listed twice or the caller\'s iterator fails', () => {
    const idx = openIndex();
    const dup = [...pages(3), { pfn: 1n, offset: 0x90000n, size: PAGE, flags: 2 }];
    const err = thrown(() => idx.addDump(record(1), dup, log('a'), NO_MISSING));
    expect(err).toBeInstanceOf(CorruptDumpError);
    expect((err as Error).message).toBe('dump 1 lists pfn 0x1 twice');
    // The same inside a full multi-row INSERT batch.
    const many = [...pages(1000)];
    many.splice(100, 0, { ...many[700] });
    expect((thrown(() => idx.addDump(record(1), many, [], NO_MISSING)) as Error).message)
      .toBe('dump 1 lists pfn 0x2bc twice');

    function* failing(): Generator<PageRow> {
      yield* pages(2);
      throw new DumpError('TRUNCATED', 'dump.1 ends inside a page');
    }
    expect((thrown(() => idx.addDump(record(1), failing(), log('a'), NO_MISSING)) as DumpError).code).toBe('TRUNCATED');
    expect(idx.listDumps()).toEqual([]);
    expect(idx.pageCount(1)).toBe(0);
    expect(idx.logLines(1)).toEqual([]);
  });

  it('rejects records the schema cannot hold as USAGE errors naming the field', () => {
    const idx = openIndex();
    for (const [over, field] of [
      [{ sha256: 'xyz' }, 'sha256'], [{ pages: -1 }, 'pages'], [{ n: 1.5 }, 'n'], [{ host: 7 as unknown as string }, 'host'],
      [{ state: 'fine' as unknown as 'complete' }, 'state'], [{ state: 'complete' }, 'complete'],
      [{ checksum: 'ok' as unknown as 'verified' }, 'checksum'], [{ not_selected_pages: -3 }, 'not_selected_pages'],
      [{ design: 'netdump' as unknown as 'kdump' }, 'design'], [{ format: 'xen' as unknown as 'elf' }, 'format'], [{ file: '' }, 'file'],
      [{ rle_convention: 'n+2' as unknown as 'kernel' }, 'rle_convention'],
    ] as const) {
      const err = thrown(() => idx.addDump(record(1, over), pages(1), [], NO_MISSING)) as DumpError;
      expect(err.code).toBe('USAGE');
      expect(err.where.field).toBe(field);
    }
    const reason = thrown(() => idx.addDump(record(1), pages(1), [], [{ start_pfn: 1n, end_pfn: 2n, reason: 'lost' as unknown as 'dumper' }])) as DumpError;
    expect([reason.code, reason.where.field]).toEqual(['USAGE', 'missing']);
    expect(idx.listDumps()).toEqual([]);
  });
});

describe('DumpIndex: pages, missing ranges, log', () => {
  it('finds present pfns by primary key and returns null for absent ones', () => {
    const idx = openIndex();
    // Out of file order, with a pfn beyond 2^53 to prove bigint survives.
    const big = (1n << 60n) + 3n;
    const rows: PageRow[] = [
      { pfn: 0x200n, offset: 0x10000n, size: 812, flags: 1 },
      { pfn: 0x100n, offset: 0x1033cn, size: PAGE, flags: 2 },
      { pfn: big, offset: (1n << 40n) + 16n, size: 17, flags: 0xffff_ffff },
    ];
    idx.addDump(record(1), rows, [], NO_MISSING);
    expect(idx.pageLocation(1, 0x100n)).toEqual(rows[1]);
    expect(idx.pageLocation(1, 0x200n)).toEqual(rows[0]);
    expect(idx.pageLocation(1, big)).toEqual(rows[2]);
    expect(idx.pageLocation(1, 0x101n)).toBeNull();
    expect(idx.pageLocation(2, 0x100n)).toBeNull();
    expect(typeof idx.pageLocation(1, 0x100n)?.offset).toBe('bigint');
    expect(idx.pageCount(1)).toBe(3);
    expect([...idx.iteratePages(1)]).toEqual([rows[1], rows[0], rows[2]]);
  });

  it('indexes 300k pages in one addDump and iterates them in pfn order across batches', () => {
    const idx = openIndex();
    const count = 300_000;
    idx.addDump(record(1, { pages: count }), pages(count, 0x1000n), [], NO_MISSING);
    expect(idx.pageCount(1)).toBe(count);
    const last = [...pages(count, 0x1000n)].at(-1);
    expect(idx.pageLocation(1, 0x1000n + BigInt(count - 1))).toEqual(last);
    let expected = 0x1000n;
    let seen = 0;
    for (const p of idx.iteratePages(1)) {
      if (p.pfn !== expected) throw new Error(`pfn 0x${p.pfn.toString(16)} where 0x${expected.toString(16)} was due`);
      // The connection stays usable while a caller iterates.
      if (seen === 5000) expect(idx.pageLocation(1, p.pfn)).toEqual(p);
      expected++;
      seen++;
    }
    expect(seen).toBe(count);
  });

  it('keeps missing ranges and returns log lines by seq with bigint timestamps', () => {
    const idx = openIndex();
    const missing: MissingRange[] = [{ start_pfn: 0x500n, end_pfn: 0x510n, reason: 'did-not-fit' }, { start_pfn: 0x20n, end_pfn: 0x21n, reason: 'dumper' }];
    const lines: LogLine[] = [
      { seq: 12, ts_nsec: 3n, level: 0, text: 'third' },
      { seq: 2, ts_nsec: 1n, level: 6, text: 'first' },
      { seq: 5, ts_nsec: (1n << 62n), level: 4, text: 'second' },
    ];
    idx.addDump(record(1), pages(1), lines, missing);
    expect(idx.missing(1)).toEqual([missing[1], missing[0]]);
    expect(idx.logLines(1)).toEqual([lines[1], lines[2], lines[0]]);
    expect(idx.missing(2)).toEqual([]);
  });

  it('searches a phrase across dumps, by n then seq, never across line boundaries', () => {
    const idx = openIndex();
    idx.addDump(record(3), pages(1), log(
      'sysrq: Trigger a crash',
      'Kernel panic - not syncing: sysrq triggered crash',
    ), NO_MISSING);
    idx.addDump(record(1), pages(1), log(
      'Oops: 0000 [#1] SMP NOPTI',
      'Kernel panic -',
      'not syncing: Fatal exception',
      'Kernel panic - not syncing: Fatal exception',
      'say "hello" world',
    ), NO_MISSING);

    const hits = idx.searchLog('Kernel panic - not syncing');
    expect(hits).toEqual([
      { n: 1, seq: 3, ts_nsec: 4_000_000_007n, text: 'Kernel panic - not syncing: Fatal exception' },
      { n: 3, seq: 1, ts_nsec: 2_000_000_007n, text: 'Kernel panic - not syncing: sysrq triggered crash' },
    ]);
    expect(idx.searchLog('kernel PANIC not syncing')).toHaveLength(2);
    expect(idx.searchLog('panic not', { limit: 1 })).toEqual([hits[0]]);
    // "panic -" ends one line and "not syncing" starts the next: no hit there.
    expect(idx.searchLog('panic not syncing Fatal').map((h) => [h.n, h.seq])).toEqual([[1, 3]]);
    // Quotes and FTS5 operators are words to look for, not syntax.
    expect(idx.searchLog('"hello" world').map((h) => h.seq)).toEqual([4]);
    expect(idx.searchLog('NOT syncing OR')).toEqual([]);
    expect(idx.searchLog('syncing*')).toHaveLength(3);
    expect((thrown(() => idx.searchLog(' - ')) as DumpError).code).toBe('USAGE');
  });
});

describe('DumpIndex: signatures', () => {
  it('groups panics that differ only in numbers and addresses, and splits call sites', () => {
    const idx = openIndex();
    const a = panicSignature('Attempted to kill init! exitcode=0x0000000b', 'panic+0x10f/0x2e0');
    const b = panicSignature('Attempted to kill init! exitcode=0x00000009', 'panic+0x101/0x2e0');
    const c = panicSignature('BUG at ffff888012345678 pid 4312 cpu 3', 'sim_driver_oops+0x2a/0x60 [sim_driver]');
    const d = panicSignature('BUG at ffff888087654321 pid 17 cpu 0', 'sim_driver_oops+0x2a/0x60 [sim_driver]');
    const e = panicSignature('BUG at ffff888087654321 pid 17 cpu 0', 'sim_driver_ioctl+0x51/0x90 [sim_driver]');
    expect(a.signature).toBe(b.signature);
    expect(c.signature).toBe(d.signature);
    expect(d.signature).not.toBe(e.signature);
    expect(a.signature).toMatch(/^[0-9a-f]{16}$/);
    const sig = (s: { signature: string; text: string }) => ({ signature: s.signature, signature_text: s.text });
    idx.addDump(record(1, sig(a)), pages(1), [], NO_MISSING);
    idx.addDump(record(2, sig(c)), pages(1), [], NO_MISSING);
    idx.addDump(record(3, sig(b)), pages(1), [], NO_MISSING);
    idx.addDump(record(4, sig(d)), pages(1), [], NO_MISSING);
    idx.addDump(record(5, sig(e)), pages(1), [], NO_MISSING);
    expect(idx.signatureGroups()).toEqual([
      { signature: a.signature, signature_text: a.text, dumps: [1, 3] },
      { signature: c.signature, signature_text: c.text, dumps: [2, 4] },
      { signature: e.signature, signature_text: e.text, dumps: [5] },
    ]);
  });
});

describe('DumpIndex: removal and integrity', () => {
  it('removeDump deletes the dump with its pages, log and missing ranges only', () => {
    const idx = openIndex();
    idx.addDump(record(1), pages(50), log('panic one'), [{ start_pfn: 1n, end_pfn: 2n }]);
    idx.addDump(record(2), pages(40), log('panic two'), [{ start_pfn: 5n, end_pfn: 6n }]);
    expect(idx.removeDump(1)).toBe(true);
    expect(idx.removeDump(1)).toBe(false);
    expect(idx.getDump(1)).toBeNull();
    expect(idx.pageCount(1)).toBe(0);
    expect(idx.logLines(1)).toEqual([]);
    expect(idx.missing(1)).toEqual([]);
    expect(idx.searchLog('panic').map((h) => h.n)).toEqual([2]);
    expect(idx.pageCount(2)).toBe(40);
    expect(idx.missing(2)).toHaveLength(1);
    // The number is free again.
    expect(idx.addDump(record(1, { sha256: 'ee'.repeat(32) }), pages(1), [], NO_MISSING).inserted).toBe(true);
    expect(idx.integrityCheck()).toBe('ok');
  });

  needs(SQLITE3).it('passes PRAGMA integrity_check in the sqlite3 CLI', () => {
    const idx = openIndex();
    idx.addDump(record(1), pages(1000), log('a', 'b'), [{ start_pfn: 1n, end_pfn: 2n }]);
    expect(idx.integrityCheck()).toBe('ok');
    idx.close();
    const file = path.join(dumpdir, INDEX_FILE);
    expect(execFileSync(SQLITE3, [file, 'PRAGMA integrity_check;'], { encoding: 'utf8' })).toBe('ok\n');
    expect(execFileSync(SQLITE3, [file, 'PRAGMA journal_mode;'], { encoding: 'utf8' })).toBe('wal\n');
  });
});

describe('DumpIndex.open', () => {
  it('creates the index with mode 0600, its WAL too', () => {
    const idx = openIndex();
    idx.addDump(record(1), pages(1), [], NO_MISSING);
    const file = path.join(dumpdir, INDEX_FILE);
    expect(idx.file).toBe(file);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(`${file}-wal`).mode & 0o777).toBe(0o600);
  });

  it('throws CorruptDumpError naming a file that is not an SQLite database', () => {
    const file = path.join(dumpdir, INDEX_FILE);
    fs.writeFileSync(file, 'this is not a database, just some text that is long enough\n'.repeat(100));
    for (const readonly of [false, true]) {
      const err = thrown(() => openIndex({ readonly }));
      expect(err).toBeInstanceOf(CorruptDumpError);
      expect((err as DumpError).message).toBe(`${file}: not an SQLite database`);
      expect((err as DumpError).where.file).toBe(file);
    }
  });

  it('refuses an SQLite database that is not an lkcd index', () => {
    const file = path.join(dumpdir, INDEX_FILE);
    const db = new Database(file);
    db.exec('CREATE TABLE t (x)');
    db.close();
    const err = thrown(() => openIndex()) as DumpError;
    expect(err).toBeInstanceOf(CorruptDumpError);
    expect(err.message).toContain(`${file}: an SQLite database, but not an lkcd index`);
  });

  it('refuses read-only a missing index with a one-line NOINPUT error', () => {
    const err = thrown(() => openIndex({ readonly: true })) as DumpError;
    expect(err).toBeInstanceOf(DumpError);
    expect(err.code).toBe('NOINPUT');
    expect(err.message).toBe(`opening dump index ${path.join(dumpdir, INDEX_FILE)}: no such file or directory`);
    expect(err.message).not.toContain('\n');
    expect(fs.existsSync(path.join(dumpdir, INDEX_FILE))).toBe(false);
  });

  it('reads an existing index read-only and refuses to write through it', () => {
    openIndex().addDump(record(1), pages(2), log('x'), NO_MISSING);
    open.pop()?.close();
    const ro = openIndex({ readonly: true });
    expect(ro.getDump(1)?.n).toBe(1);
    expect(ro.pageCount(1)).toBe(2);
    expect((thrown(() => ro.removeDump(1)) as DumpError).code).toBe('INTERNAL');
  });

  it('refuses a schema newer than this code with UNSUPPORTED naming the file', () => {
    openIndex().close();
    const file = path.join(dumpdir, INDEX_FILE);
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    const err = thrown(() => openIndex()) as DumpError;
    expect(err.code).toBe('UNSUPPORTED');
    expect(err.message).toContain(file);
    expect(err.message).toContain(`version ${SCHEMA_VERSION + 1}`);
  });
});

describe('migrations', () => {
  it('are numbered 1..SCHEMA_VERSION with no gap, and a new file records each in schema_history', () => {
    expect(MIGRATIONS.map((m) => m.version)).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
    openIndex().close();
    const db = new Database(path.join(dumpdir, INDEX_FILE), { readonly: true });
    expect(db.prepare('SELECT version FROM schema_history ORDER BY version').pluck().all())
      .toEqual(MIGRATIONS.map((m) => m.version));
    db.close();
  });

  /** The version-1 schema exactly as it shipped; never update this to match newer code. */
  const V1_SCHEMA = `
    PRAGMA application_id = ${APPLICATION_ID};
    CREATE TABLE schema_history (
      version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL, description TEXT NOT NULL);
    CREATE TABLE dumps (
      n INTEGER PRIMARY KEY CHECK (n >= 0), dir TEXT NOT NULL, time_sec INTEGER NOT NULL,
      time_usec INTEGER NOT NULL, host TEXT NOT NULL, release TEXT NOT NULL, version TEXT NOT NULL,
      machine TEXT NOT NULL, panic_string TEXT NOT NULL, level INTEGER NOT NULL, compress INTEGER NOT NULL,
      flags INTEGER NOT NULL, pages INTEGER NOT NULL, pages_compressed INTEGER NOT NULL,
      raw_bytes INTEGER NOT NULL, stored_bytes INTEGER NOT NULL,
      complete INTEGER NOT NULL CHECK (complete IN (0, 1)), missing_pages INTEGER NOT NULL,
      sha256 TEXT NOT NULL UNIQUE, signature TEXT NOT NULL, saved_at INTEGER NOT NULL);
    CREATE TABLE pages (
      dump_n INTEGER NOT NULL REFERENCES dumps(n), pfn INTEGER NOT NULL, offset INTEGER NOT NULL,
      size INTEGER NOT NULL, flags INTEGER NOT NULL, PRIMARY KEY (dump_n, pfn)) WITHOUT ROWID;
    CREATE TABLE missing (
      dump_n INTEGER NOT NULL REFERENCES dumps(n), start_pfn INTEGER NOT NULL,
      end_pfn INTEGER NOT NULL CHECK (end_pfn > start_pfn), PRIMARY KEY (dump_n, start_pfn)) WITHOUT ROWID;
    CREATE VIRTUAL TABLE log USING fts5(text, dump_n UNINDEXED, seq UNINDEXED, ts_nsec UNINDEXED, level UNINDEXED);
    INSERT INTO schema_history VALUES (1, 1600000000, 'dumps, pages, missing ranges, FTS5 log');
    INSERT INTO dumps VALUES (4, '/var/log/dump/4', 1600000000, 5, 'oldhost', '2.6.0', '#1', 'x86_64',
      'Attempted to kill init!', 7, 1, 2, 2, 1, 8192, 5000, 1, 0, '${'4a'.repeat(32)}', '0123456789abcdef', 1600000100);
    INSERT INTO pages VALUES (4, 16, 65536, 4096, 2), (4, 17, 69648, 900, 1);
    INSERT INTO missing VALUES (4, 30, 32);
    INSERT INTO log (rowid, text, dump_n, seq, ts_nsec, level)
      VALUES ((4 << 32) + 0, 'Kernel panic - not syncing: Attempted to kill init!', 4, 9, 123456789, 0);
    PRAGMA user_version = 1;
  `;

  it('upgrades a hand-made version-1 index to the current schema, keeping its data', () => {
    const file = path.join(dumpdir, INDEX_FILE);
    const v1 = new Database(file);
    v1.exec(V1_SCHEMA);
    v1.close();

    // A read-only open cannot migrate, so it says what to do.
    const roErr = thrown(() => openIndex({ readonly: true })) as DumpError;
    expect(roErr.code).toBe('UNSUPPORTED');
    expect(roErr.message).toContain('version 1 needs upgrading');

    const idx = openIndex();
    expect(idx.schemaVersion).toBe(SCHEMA_VERSION);
    const old = idx.getDump(4);
    expect(old).toMatchObject({
      n: 4, host: 'oldhost', complete: true, sha256: '4a'.repeat(32), signature: '0123456789abcdef',
      // v2's signature_text starts as the v1 row's panic string.
      signature_text: 'Attempted to kill init!',
    });
    expect(idx.pageLocation(4, 17n)).toEqual({ pfn: 17n, offset: 69648n, size: 900, flags: 1 });
    expect(idx.missing(4)).toEqual([{ start_pfn: 30n, end_pfn: 32n, reason: 'unspecified' }]);
    // v4: a v1 row's state comes from complete; it was never checked against checksums.
    expect(old).toMatchObject({ state: 'complete', checksum: 'unverified', damaged_pages: 0, not_selected_pages: null });
    // v6: every earlier row is an LKCD dump lkcd save wrote, dump.N beside it; RLE (compress 1) in the kernel's convention.
    expect(old).toMatchObject({ design: 'lkcd-softboot', format: 'lkcd', file: 'dump.4', compression: 'rle', rle_convention: 'kernel', source: '', log_error: '', notes: '' });
    expect(idx.searchLog('kill init')).toEqual([
      { n: 4, seq: 9, ts_nsec: 123456789n, text: 'Kernel panic - not syncing: Attempted to kill init!' },
    ]);
    // New rows use the v2 column; both stay side by side.
    idx.addDump(record(5), pages(2), log('new'), NO_MISSING);
    idx.addDump(record(6, { sha256: '66'.repeat(32), design: 'kdump', format: 'diskdump', file: '../../../var/crash/x/vmcore', compression: 'lzo', compress: 0 }), [], log('kd'), NO_MISSING);
    expect(idx.getDump(6)).toMatchObject({ design: 'kdump', format: 'diskdump', file: '../../../var/crash/x/vmcore', compression: 'lzo', rle_convention: null });
    expect(idx.getDump(5)?.signature_text).toBe(record(5).signature_text);
    expect(idx.integrityCheck()).toBe('ok');
    idx.close();

    const db = new Database(file, { readonly: true });
    expect(db.prepare('SELECT version FROM schema_history ORDER BY version').pluck().all()).toEqual(MIGRATIONS.map((m) => m.version));
    expect(db.prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'dumps' AND sql IS NOT NULL")
      .pluck().all()).toEqual(['dumps_signature', 'dumps_sha256']);
    expect(db.prepare('EXPLAIN QUERY PLAN SELECT n FROM dumps WHERE signature = ?').all('x')
      .map((r) => (r as { detail: string }).detail).join(' ')).toContain('dumps_signature');
    db.close();

    // Opening again runs nothing twice.
    expect(openIndex().schemaVersion).toBe(SCHEMA_VERSION);
  });

  it('version 6 drops UNIQUE from dumps.sha256 by rebuilding the table: rows, indexes, the pstore view and foreign keys survive', () => {
    const file = path.join(dumpdir, INDEX_FILE);
    const v1 = new Database(file);
    v1.exec(V1_SCHEMA);
    v1.close();
    const idx = openIndex();
    const sha = '4a'.repeat(32);
    // The v1 row is intact, and an identical dump of another crash now has a row of its own.
    expect(idx.getDump(4)).toMatchObject({ n: 4, sha256: sha, host: 'oldhost', state: 'complete', same_as: null });
    expect(idx.addDump(record(9, { sha256: sha }), pages(2), log('again'), NO_MISSING)).toEqual({ n: 9, inserted: true });
    expect(idx.getDump(9)?.same_as).toBe(4);
    expect(idx.pageLocation(4, 16n)).toEqual({ pfn: 16n, offset: 65536n, size: 4096, flags: 2 });
    // Foreign keys are on again for the connection, and still enforced.
    const db = idx.connection;
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(() => db.prepare('INSERT INTO pages (dump_n, pfn, offset, size, flags) VALUES (77, 1, 0, 1, 1)').run()).toThrow(/FOREIGN KEY/);
    expect(db.pragma('foreign_key_check')).toEqual([]);
    // The v5 view over dumps was put back and still joins.
    db.prepare(`INSERT INTO pstore_records (dir, file, type, record_id, time_sec, crash_time, size, compressed, reason, oops_count, panic_string, ecc_notice, sha256, saved_at)
      VALUES ('d', 'dmesg-ramoops-0', 'dmesg', 0, 1600000000, 1600000010, 10, 0, 'Panic', 1, 'Attempted to kill init!', '', '${'77'.repeat(32)}', 1)`).run();
    expect(db.prepare('SELECT dump_n, skew FROM pstore_dump_links ORDER BY dump_n').all()).toEqual([{ dump_n: 4, skew: 10 }]);
    // Lookups by sha256 use the new index.
    expect(db.prepare('EXPLAIN QUERY PLAN SELECT n FROM dumps WHERE sha256 = ?').all('x')
      .map((r) => (r as { detail: string }).detail).join(' ')).toContain('dumps_sha256');
    expect(db.prepare("SELECT sql FROM sqlite_schema WHERE name = 'dumps'").pluck().get()).not.toMatch(/UNIQUE/i);
    expect(idx.integrityCheck()).toBe('ok');
  });

  it('version 7: a pstore record is its sha256 and its time; the same bytes at another time are another record', () => {
    const idx = openIndex();
    const pidx = PstoreIndex.of(idx);
    const row = (time: number): PstoreRecordRow => ({
      dir: `/d/${time}`, file: 'dmesg-ramoops-0', type: 'dmesg', record_id: 0, time_sec: time, crash_time: time, size: 10, compressed: false,
      reason: 'Panic', oops_count: 1, panic_string: 'p', ecc_notice: '', sha256: '5e'.repeat(32), saved_at: 1,
    });
    const first = pidx.add(row(1795000045), log('Kernel panic - not syncing: p'));
    expect(first.inserted).toBe(true);
    // Archived again after a kill: the same record.
    expect(pidx.add(row(1795000045), log('x'))).toEqual({ id: first.id, inserted: false });
    // The same bytes from a later crash.
    const second = pidx.add(row(1795000053), log('Kernel panic - not syncing: p'));
    expect(second.inserted).toBe(true);
    expect(pidx.list().map((r) => [r.id, r.time_sec])).toEqual([[first.id, 1795000045], [second.id, 1795000053]]);
    expect(pidx.findRecord('5e'.repeat(32), 1795000053)?.id).toBe(second.id);
    expect(pidx.findRecord('5e'.repeat(32), 1795000000)).toBeNull();
    expect(pidx.findBySha256('5e'.repeat(32))?.id).toBe(first.id);
    const db = idx.connection;
    expect(db.prepare("SELECT sql FROM sqlite_schema WHERE name = 'pstore_records'").pluck().get()).not.toMatch(/sha256\s+TEXT NOT NULL UNIQUE/);
    expect(() => db.prepare('INSERT INTO pstore_records SELECT NULL, dir, file || \'x\', type, record_id, time_sec, crash_time, size, compressed, reason, oops_count, panic_string, ecc_notice, sha256, saved_at FROM pstore_records WHERE id = ?').run(first.id)).toThrow(/UNIQUE/);
  });

  it('version 6 refuses an index whose pages refer to a dump it does not hold, naming the file, and leaves it at version 5', () => {
    const file = path.join(dumpdir, INDEX_FILE);
    const v1 = new Database(file);
    v1.exec(V1_SCHEMA);
    // Written with foreign keys off (as a hand edit or another tool would), so nothing stopped it.
    v1.pragma('foreign_keys = OFF');
    v1.exec('INSERT INTO pages VALUES (8, 1, 0, 4096, 1)');
    v1.close();
    const err = thrown(() => openIndex()) as DumpError;
    expect(err.code).toBe('CORRUPT');
    expect(err.message).toBe(`${file}: migration 6: 1 rows of pages refer to missing dumps rows`);
    const db = new Database(file, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(5);
    expect(db.prepare("SELECT sql FROM sqlite_schema WHERE name = 'dumps'").pluck().get()).toMatch(/sha256 TEXT NOT NULL UNIQUE/);
    db.close();
  });
});
