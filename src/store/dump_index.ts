import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { deleteDeviceDumps, insertDeviceDumps, listDeviceDumps, type DeviceDumpRow } from './device_index.js';
import type { Database as Db, Statement } from 'better-sqlite3';
import { CorruptDumpError, DumpError, InternalError, UsageError, ioError } from '../codec/errors.js';
import { LOG_ROWID_SHIFT, SCHEMA_VERSION, checkSchema, migrate, userVersion } from './schema.js';
import {
  CHECKSUM_STATUSES, DUMP_DESIGNS, DUMP_FILE_FORMATS, DUMP_STATES, RANGE_REASONS, type DumpRecord, type LogHit, type LogLine, type MissingRange, type PageRow,
  type RangeReason, type SignatureGroup,
} from './types.js';

/** The index's file name inside DUMPDIR. */
export const INDEX_FILE = 'lkcd-index.sqlite';

/** Owner read/write only: the index names hosts, panics and kernel log lines. */
export const INDEX_FILE_MODE = 0o600;

/** Largest dump number: log rowids are (n << LOG_ROWID_SHIFT) + line and must fit in a signed 64-bit rowid. */
export const MAX_DUMP_N = 2 ** 31 - 1;

/** Log lines one dump may hold (the rowid bits below n). */
const MAX_LOG_LINES = 2 ** Number(LOG_ROWID_SHIFT);

const I64_MAX = (1n << 63n) - 1n;
const U32_MAX = 0xffff_ffff;

/** Page rows per INSERT statement in addDump (times PAGE_COLUMNS stays under SQLite's 32766 parameters). */
const PAGE_INSERT_BATCH = 128;
const PAGE_COLUMNS = 6;

/** Rows iteratePages() fetches per query; the connection is free between batches. */
const PAGE_BATCH = 4096;

const SHA256_HEX = /^[0-9a-f]{64}$/i;

/**
 * Columns of DumpRecord, in the order the statements below use. Typed as a
 * Record so that a field added to DumpRecord without a column fails to compile.
 */
const DUMP_COLUMN_SET: Record<Exclude<keyof DumpRecord, 'same_as'>, true> = {
  n: true, dir: true, time_sec: true, time_usec: true, host: true, release: true, version: true, machine: true,
  panic_string: true, level: true, compress: true, flags: true, pages: true, pages_compressed: true,
  raw_bytes: true, stored_bytes: true, complete: true, missing_pages: true, sha256: true, signature: true,
  signature_text: true, saved_at: true, state: true, checksum: true, damaged_pages: true, memory_pages: true,
  dumper_pages: true, not_selected_pages: true, design: true, format: true, file: true, compression: true,
  rle_convention: true, source: true, log_error: true, notes: true,
};
const DUMP_COLUMNS = Object.keys(DUMP_COLUMN_SET) as ReadonlyArray<Exclude<keyof DumpRecord, 'same_as'>>;

/**
 * DumpRecord.same_as, derived when a row is read (never stored): the
 * lowest earlier n whose dump.N has the same sha256, or NULL.
 */
const SAME_AS_SQL = '(SELECT min(e.n) FROM dumps e WHERE e.sha256 = dumps.sha256 AND e.n < dumps.n) AS same_as';

const STRING_FIELDS = [
  'dir', 'host', 'release', 'version', 'machine', 'panic_string', 'signature', 'signature_text', 'file', 'compression', 'source', 'log_error', 'notes',
] as const;
const COUNT_FIELDS = [
  'time_sec', 'time_usec', 'level', 'compress', 'flags', 'pages', 'pages_compressed', 'raw_bytes',
  'stored_bytes', 'missing_pages', 'saved_at', 'damaged_pages', 'memory_pages', 'dumper_pages',
] as const;

type DumpRow = Omit<DumpRecord, 'complete' | 'same_as'> & { complete: number; same_as: number | null };
/** Raw rows read with safeIntegers: every INTEGER comes back as bigint. */
type PageTuple = [pfn: bigint, offset: bigint, size: bigint, flags: bigint, crc32: bigint | null];
type LogTuple = [seq: bigint, ts_nsec: bigint, level: bigint, text: string];
type HitTuple = [n: bigint, seq: bigint, ts_nsec: bigint, text: string];

interface Statements {
  dumpByN: Statement<[number], DumpRow>;
  dumpBySha: Statement<[string], DumpRow>;
  allDumps: Statement<[], DumpRow>;
  signatures: Statement<[], { n: number; signature: string; signature_text: string }>;
  insertDump: Statement<unknown[]>;
  insertPage: Statement<[number, bigint, bigint, number, number, number | null]>;
  insertPageBatch: Statement<Array<number | bigint | null>>;
  insertMissing: Statement<[number, bigint, bigint, string]>;
  insertLog: Statement<[bigint, string, number, number, bigint, number]>;
  deleteDump: Statement<[number]>;
  deletePages: Statement<[number]>;
  deleteMissing: Statement<[number]>;
  deleteLog: Statement<[bigint, bigint]>;
  pageAt: Statement<[number, bigint], PageTuple>;
  pageCount: Statement<[number], number>;
  pagesAfter: Statement<[number, bigint, number], PageTuple>;
  missing: Statement<[number], [bigint, bigint, string]>;
  logRange: Statement<[bigint, bigint], LogTuple>;
  search: Statement<[string, number], HitTuple>;
}

/**
 * The SQLite index of one DUMPDIR: a row per saved dump, a row per saved
 * page (pfn -> offset of its dump_page header in dump.N) for random reads,
 * the crashed kernel's log under FTS5, and the frames each dump is missing.
 * One handle owns one connection; open it, use it, close it.
 */
export class DumpIndex {
  private readonly st: Statements;

  private constructor(
    private readonly db: Db,
    /** Absolute path of the index file. */
    readonly file: string,
    readonly readonly: boolean,
  ) {
    this.st = prepareStatements(db);
  }

  /**
   * Opens DUMPDIR's index. Read-write opens create a missing file (mode
   * 0600, WAL journal) and bring an older schema up to SCHEMA_VERSION.
   * A read-only open needs an existing, current index.
   */
  static open(dumpdir: string, opts: { readonly?: boolean; fileName?: string } = {}): DumpIndex {
    const readonly = opts.readonly ?? false;
    // fileName: an index built beside the real one (lkcd reindex), then renamed over it.
    const file = path.join(path.resolve(dumpdir), opts.fileName ?? INDEX_FILE);
    if (readonly) {
      if (!fs.existsSync(file)) {
        throw new DumpError('NOINPUT', `opening dump index ${file}: no such file or directory`, { file });
      }
    } else {
      createPrivateFile(file);
    }
    let db: Db;
    try {
      db = new Database(file, { readonly, fileMustExist: true });
    } catch (err) {
      throw sqliteFailure('opening dump index', file, err);
    }
    try {
      if (!readonly) {
        db.pragma('journal_mode = WAL');
        // `lkcd save` marks the device dump saved once addDump returns, so a
        // commit must survive power loss: FULL syncs the WAL at each commit.
        db.pragma('synchronous = FULL');
      }
      db.pragma('foreign_keys = ON');
      const version = checkSchema(db, file);
      if (readonly) {
        if (version < SCHEMA_VERSION) {
          throw new DumpError('UNSUPPORTED',
            `${file}: index schema version ${version} needs upgrading to ${SCHEMA_VERSION}; open it read-write once (lkcd save does)`,
            { file });
        }
      } else {
        migrate(db, file, () => Math.floor(Date.now() / 1000));
      }
      return new DumpIndex(db, file, readonly);
    } catch (err) {
      db.close();
      throw sqliteFailure('opening dump index', file, err);
    }
  }

  /** The open connection, for sibling tables kept in the same file (src/store/pstore_index.ts). */
  get connection(): Db {
    return this.db;
  }

  /** Closes the connection; later calls are no-ops. */
  close(): void {
    if (this.db.open) this.db.close();
  }

  /** PRAGMA user_version of the file. */
  get schemaVersion(): number {
    return this.guard(() => 'reading schema version', () => userVersion(this.db));
  }

  /**
   * Indexes one dump with its pages, log lines and missing ranges in a single
   * transaction. The same dump (sha256) already indexed as `rec.n` is not
   * added again: `inserted: false`. A different dump already holding `rec.n`
   * is an error (CORRUPT): DUMPDIR and its index disagree. A dump identical
   * to one indexed under another n is another crash's: it is added, and
   * reads back with `same_as` naming the earlier one.
   */
  addDump(
    rec: DumpRecord,
    pages: Iterable<PageRow>,
    log: Iterable<LogLine>,
    missing: Iterable<MissingRange>,
    devices: Iterable<DeviceDumpRow> = [],
  ): { n: number; inserted: boolean } {
    this.checkWritable('addDump');
    checkRecord(rec);
    const sha256 = rec.sha256.toLowerCase();
    return this.guard(() => `indexing dump ${rec.n}`, () => this.db.transaction(() => {
      const taken = this.st.dumpByN.get(rec.n);
      if (taken && taken.sha256 === sha256) return { n: rec.n, inserted: false };
      if (taken) {
        throw new CorruptDumpError(
          `dump ${rec.n} is already indexed with sha256 ${taken.sha256} (${taken.dir}), not ${sha256} (${rec.dir})`,
          { file: this.file });
      }
      this.st.insertDump.run(...DUMP_COLUMNS.map((c) =>
        c === 'complete' ? (rec.complete ? 1 : 0) : c === 'sha256' ? sha256 : rec[c]));
      this.insertPages(rec.n, pages);
      this.insertLog(rec.n, log);
      this.insertMissing(rec.n, missing);
      insertDeviceDumps(this.db, rec.n, devices);
      return { n: rec.n, inserted: true };
    }).immediate());
  }

  /** Deletes a dump and everything indexed under it; false if it was not there. */
  removeDump(n: number): boolean {
    this.checkWritable('removeDump');
    checkDumpN(n);
    return this.guard(() => `removing dump ${n}`, () => this.db.transaction(() => {
      const [lo, hi] = logRowids(n);
      this.st.deleteLog.run(lo, hi);
      deleteDeviceDumps(this.db, n);
      this.st.deleteMissing.run(n);
      this.st.deletePages.run(n);
      return this.st.deleteDump.run(n).changes > 0;
    }).immediate());
  }

  /** Every indexed dump, by n. */
  listDumps(): DumpRecord[] {
    return this.guard(() => 'listing dumps', () => this.st.allDumps.all().map(toRecord));
  }

  getDump(n: number): DumpRecord | null {
    checkDumpN(n);
    return this.guard(() => `reading dump ${n}`, () => {
      const row = this.st.dumpByN.get(n);
      return row ? toRecord(row) : null;
    });
  }

  /** The first dump (lowest n) whose dump.N has this sha256, or null. */
  findBySha256(sha: string): DumpRecord | null {
    return this.guard(() => 'looking up sha256', () => {
      const row = this.st.dumpBySha.get(sha.toLowerCase());
      return row ? toRecord(row) : null;
    });
  }

  /** Where page `pfn` of dump `n` is, by primary key; null if the dump lacks it. */
  pageLocation(n: number, pfn: bigint): PageRow | null {
    checkDumpN(n);
    if (typeof pfn !== 'bigint') throw new UsageError(`pfn ${String(pfn)} is not a bigint`, { field: 'pfn' });
    if (!isI64(pfn)) return null;
    return this.guard(() => `looking up pfn 0x${pfn.toString(16)} in dump ${n}`, () => {
      const row = this.st.pageAt.get(n, pfn);
      return row ? toPage(row) : null;
    });
  }

  pageCount(n: number): number {
    checkDumpN(n);
    return this.guard(() => `counting pages of dump ${n}`, () => this.st.pageCount.get(n) ?? 0);
  }

  /**
   * Dump n's pages by pfn, fetched in batches so the connection stays usable
   * between them (a caller may look pages up while iterating).
   */
  *iteratePages(n: number): Generator<PageRow> {
    checkDumpN(n);
    let after = -1n;
    for (;;) {
      const batch = this.guard(() => `listing pages of dump ${n}`, () => this.st.pagesAfter.all(n, after, PAGE_BATCH));
      for (const row of batch) yield toPage(row);
      if (batch.length < PAGE_BATCH) return;
      after = batch[batch.length - 1][0];
    }
  }

  /** Dump n's missing ranges by start_pfn. */
  missing(n: number): MissingRange[] {
    checkDumpN(n);
    return this.guard(() => `listing missing pages of dump ${n}`, () =>
      this.st.missing.all(n).map(([start_pfn, end_pfn, reason]) => ({ start_pfn, end_pfn, reason: reason as RangeReason })));
  }

  /** Dump n's device dumps (vmcoredd), in the order the drivers added them. */
  deviceDumps(n: number): DeviceDumpRow[] {
    checkDumpN(n);
    return this.guard(() => `listing device dumps of dump ${n}`, () => listDeviceDumps(this.db, n));
  }

  /** Dump n's log by seq. */
  logLines(n: number): LogLine[] {
    checkDumpN(n);
    return this.guard(() => `reading log of dump ${n}`, () =>
      this.st.logRange.all(...logRowids(n)).map(([seq, ts_nsec, level, text]) =>
        ({ seq: Number(seq), ts_nsec, level: Number(level), text })));
  }

  /**
   * Log lines of every dump that contain `query` as a phrase (words in order,
   * within one line), by n then seq. FTS5 syntax in the query has no effect.
   */
  searchLog(query: string, opts: { limit?: number } = {}): LogHit[] {
    const limit = opts.limit ?? -1;
    if (limit !== -1 && !(Number.isSafeInteger(limit) && limit > 0)) {
      throw new UsageError(`search limit ${limit} is not a positive integer`, { field: 'limit' });
    }
    // unicode61, the default tokenizer, indexes letters and digits only.
    if (!/[\p{L}\p{N}]/u.test(query)) {
      throw new UsageError(`search query ${JSON.stringify(query)} has no words to look for`);
    }
    const phrase = `"${query.replace(/"/g, '""')}"`;
    return this.guard(() => 'searching logs', () =>
      this.st.search.all(phrase, limit).map(([n, seq, ts_nsec, text]) =>
        ({ n: Number(n), seq: Number(seq), ts_nsec, text })));
  }

  /** Dumps grouped by panic signature; groups ordered by their first dump. */
  signatureGroups(): SignatureGroup[] {
    return this.guard(() => 'grouping signatures', () => {
      const groups = new Map<string, SignatureGroup>();
      for (const { n, signature, signature_text } of this.st.signatures.all()) {
        let g = groups.get(signature);
        if (!g) groups.set(signature, g = { signature, signature_text, dumps: [] });
        g.dumps.push(n);
      }
      return [...groups.values()];
    });
  }

  /** PRAGMA integrity_check, its lines joined: 'ok' for a sound file. */
  integrityCheck(): string {
    return this.guard(() => 'checking index integrity', () =>
      (this.db.pragma('integrity_check') as Array<{ integrity_check: string }>)
        .map((r) => r.integrity_check).join('\n'));
  }

  /**
   * Inserts PAGE_INSERT_BATCH rows per statement: one native call per row is
   * what dominates a 300k-page dump. A batch that hits a duplicate pfn is
   * rolled back by SQLite and retried row by row to name the pfn.
   */
  private insertPages(n: number, pages: Iterable<PageRow>): void {
    const args: Array<number | bigint | null> = [];
    for (const p of pages) {
      checkPage(p);
      args.push(n, p.pfn, p.offset, p.size, p.flags, p.crc32 ?? null);
      if (args.length === PAGE_INSERT_BATCH * PAGE_COLUMNS) {
        try {
          this.st.insertPageBatch.run(...args);
        } catch (err) {
          if (!isConstraint(err, 'SQLITE_CONSTRAINT_PRIMARYKEY')) throw err;
          this.insertPagesOneByOne(n, args);
        }
        args.length = 0;
      }
    }
    this.insertPagesOneByOne(n, args);
  }

  private insertPagesOneByOne(n: number, args: ReadonlyArray<number | bigint | null>): void {
    for (let i = 0; i < args.length; i += PAGE_COLUMNS) {
      const row = args.slice(i, i + PAGE_COLUMNS) as [number, bigint, bigint, number, number, number | null];
      try {
        this.st.insertPage.run(...row);
      } catch (err) {
        if (isConstraint(err, 'SQLITE_CONSTRAINT_PRIMARYKEY')) {
          throw new CorruptDumpError(`dump ${n} lists pfn 0x${row[1].toString(16)} twice`, { file: this.file }, { cause: err });
        }
        throw err;
      }
    }
  }

  private insertLog(n: number, log: Iterable<LogLine>): void {
    const lines = [...log];
    if (lines.length > MAX_LOG_LINES) {
      throw new UsageError(`dump ${n} has ${lines.length} log lines; the index holds at most ${MAX_LOG_LINES}`);
    }
    lines.forEach(checkLogLine);
    // Rowid order is seq order (see MIGRATIONS), so rank lines by seq first.
    lines.sort((a, b) => a.seq - b.seq);
    const [base] = logRowids(n);
    lines.forEach((l, i) => this.st.insertLog.run(base + BigInt(i), l.text, n, l.seq, l.ts_nsec, l.level));
  }

  private insertMissing(n: number, missing: Iterable<MissingRange>): void {
    for (const r of missing) {
      if (!isI64(r.start_pfn) || !isI64(r.end_pfn) || r.end_pfn <= r.start_pfn) {
        throw new UsageError(`dump ${n}: missing range [${String(r.start_pfn)}, ${String(r.end_pfn)}) is not a non-empty pfn range`,
          { field: 'missing' });
      }
      try {
        const reason = r.reason ?? 'unspecified';
        if (!RANGE_REASONS.includes(reason)) {
          throw new UsageError(`dump ${n}: missing range reason ${JSON.stringify(reason)} is not one of ${RANGE_REASONS.join(', ')}`, { field: 'missing' });
        }
        this.st.insertMissing.run(n, r.start_pfn, r.end_pfn, reason);
      } catch (err) {
        if (isConstraint(err, 'SQLITE_CONSTRAINT_PRIMARYKEY')) {
          throw new CorruptDumpError(`dump ${n} lists missing range at pfn 0x${r.start_pfn.toString(16)} twice`,
            { file: this.file }, { cause: err });
        }
        throw err;
      }
    }
  }

  private checkWritable(what: string): void {
    if (this.readonly) throw new InternalError(`${what} on ${this.file}, opened read-only`, { file: this.file });
  }

  /** Runs `fn`, turning SQLite failures into DumpErrors that name the file. */
  private guard<T>(context: () => string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw sqliteFailure(context(), this.file, err);
    }
  }
}

function prepareStatements(db: Db): Statements {
  const cols = DUMP_COLUMNS.join(', ');
  const read = `${cols}, ${SAME_AS_SQL}`;
  const safe = <S extends Statement>(s: S): S => s.safeIntegers(true).raw(true) as S;
  return {
    dumpByN: db.prepare(`SELECT ${read} FROM dumps WHERE n = ?`),
    dumpBySha: db.prepare(`SELECT ${read} FROM dumps WHERE sha256 = ? ORDER BY n LIMIT 1`),
    allDumps: db.prepare(`SELECT ${read} FROM dumps ORDER BY n`),
    signatures: db.prepare('SELECT n, signature, signature_text FROM dumps ORDER BY n'),
    insertDump: db.prepare(`INSERT INTO dumps (${cols}) VALUES (${DUMP_COLUMNS.map(() => '?').join(', ')})`),
    insertPage: db.prepare('INSERT INTO pages (dump_n, pfn, offset, size, flags, crc32) VALUES (?, ?, ?, ?, ?, ?)'),
    insertPageBatch: db.prepare(`INSERT INTO pages (dump_n, pfn, offset, size, flags, crc32) VALUES ${
      Array.from({ length: PAGE_INSERT_BATCH }, () => '(?, ?, ?, ?, ?, ?)').join(', ')}`) as Statement<Array<number | bigint | null>>,
    insertMissing: db.prepare('INSERT INTO missing (dump_n, start_pfn, end_pfn, reason) VALUES (?, ?, ?, ?)'),
    insertLog: db.prepare('INSERT INTO log (rowid, text, dump_n, seq, ts_nsec, level) VALUES (?, ?, ?, ?, ?, ?)'),
    deleteDump: db.prepare('DELETE FROM dumps WHERE n = ?'),
    deletePages: db.prepare('DELETE FROM pages WHERE dump_n = ?'),
    deleteMissing: db.prepare('DELETE FROM missing WHERE dump_n = ?'),
    deleteLog: db.prepare('DELETE FROM log WHERE rowid BETWEEN ? AND ?'),
    pageAt: safe(db.prepare('SELECT pfn, offset, size, flags, crc32 FROM pages WHERE dump_n = ? AND pfn = ?')),
    pageCount: db.prepare('SELECT count(*) FROM pages WHERE dump_n = ?').pluck() as Statement<[number], number>,
    pagesAfter: safe(db.prepare(
      'SELECT pfn, offset, size, flags, crc32 FROM pages WHERE dump_n = ? AND pfn > ? ORDER BY pfn LIMIT ?')),
    missing: safe(db.prepare('SELECT start_pfn, end_pfn, reason FROM missing WHERE dump_n = ? ORDER BY start_pfn')),
    logRange: safe(db.prepare(
      'SELECT seq, ts_nsec, level, text FROM log WHERE rowid BETWEEN ? AND ? ORDER BY rowid')),
    search: safe(db.prepare(
      'SELECT dump_n, seq, ts_nsec, text FROM log WHERE log MATCH ? ORDER BY rowid LIMIT ?')),
  };
}

/** Creates `file` with mode 0600 unless it exists; SQLite then gives its -wal and -shm the same mode. */
function createPrivateFile(file: string): void {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, INDEX_FILE_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw ioError('creating dump index', err as NodeJS.ErrnoException);
  }
  try {
    // The umask may have cleared bits of 0600 but never adds any; make it exact.
    fs.fchmodSync(fd, INDEX_FILE_MODE);
  } finally {
    fs.closeSync(fd);
  }
}

/** First and last log rowid of dump n. */
function logRowids(n: number): [bigint, bigint] {
  const lo = BigInt(n) << LOG_ROWID_SHIFT;
  return [lo, lo + (1n << LOG_ROWID_SHIFT) - 1n];
}

function toRecord(row: DumpRow): DumpRecord {
  return {
    ...row, complete: row.complete !== 0, not_selected_pages: row.not_selected_pages ?? null,
    same_as: row.same_as ?? null, rle_convention: row.rle_convention ?? null,
  };
}

function toPage([pfn, offset, size, flags, crc32]: PageTuple): PageRow {
  const row: PageRow = { pfn, offset, size: Number(size), flags: Number(flags) };
  if (crc32 !== null) row.crc32 = Number(crc32);
  return row;
}

function isI64(v: unknown): v is bigint {
  return typeof v === 'bigint' && v >= 0n && v <= I64_MAX;
}

function isU32(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 0 && (v as number) <= U32_MAX;
}

function checkDumpN(n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > MAX_DUMP_N) {
    throw new UsageError(`dump number ${n} is not an integer in 0..${MAX_DUMP_N}`, { field: 'n' });
  }
}

function checkRecord(rec: DumpRecord): void {
  checkDumpN(rec.n);
  const bad = (field: string, what: string): never => {
    throw new UsageError(`dump ${rec.n}: ${field} ${JSON.stringify(String(rec[field as keyof DumpRecord]))} ${what}`,
      { field });
  };
  for (const f of STRING_FIELDS) if (typeof rec[f] !== 'string') bad(f, 'is not a string');
  for (const f of COUNT_FIELDS) if (!Number.isSafeInteger(rec[f]) || rec[f] < 0) bad(f, 'is not a non-negative integer');
  if (typeof rec.complete !== 'boolean') bad('complete', 'is not a boolean');
  if (!DUMP_STATES.includes(rec.state)) bad('state', `is not one of ${DUMP_STATES.join(', ')}`);
  if (rec.complete !== (rec.state === 'complete')) bad('complete', `disagrees with state ${rec.state}`);
  if (!CHECKSUM_STATUSES.includes(rec.checksum)) bad('checksum', `is not one of ${CHECKSUM_STATUSES.join(', ')}`);
  if (rec.not_selected_pages !== null && (!Number.isSafeInteger(rec.not_selected_pages) || rec.not_selected_pages < 0)) {
    bad('not_selected_pages', 'is neither null nor a non-negative integer');
  }
  if (!SHA256_HEX.test(rec.sha256)) bad('sha256', 'is not 64 hex digits');
  if (!DUMP_DESIGNS.includes(rec.design)) bad('design', `is not one of ${DUMP_DESIGNS.join(', ')}`);
  if (!DUMP_FILE_FORMATS.includes(rec.format)) bad('format', `is not one of ${DUMP_FILE_FORMATS.join(', ')}`);
  if (rec.file === '') bad('file', 'is empty');
  if (rec.rle_convention !== null && rec.rle_convention !== 'kernel' && rec.rle_convention !== 'libkdumpfile') {
    bad('rle_convention', 'is neither null, kernel nor libkdumpfile');
  }
}

function checkPage(p: PageRow): void {
  if (!isI64(p.pfn) || !isI64(p.offset) || !isU32(p.size) || !isU32(p.flags) || (p.crc32 != null && !isU32(p.crc32))) {
    throw new UsageError(
      `page row {pfn ${String(p.pfn)}, offset ${String(p.offset)}, size ${p.size}, flags ${p.flags}} is out of range`,
      { field: 'pages' });
  }
}

function checkLogLine(l: LogLine): void {
  if (!Number.isSafeInteger(l.seq) || l.seq < 0 || !isI64(l.ts_nsec) || !Number.isInteger(l.level)
      || typeof l.text !== 'string') {
    throw new UsageError(`log line seq ${l.seq} is malformed`, { field: 'log' });
  }
}

function isConstraint(err: unknown, code: string): boolean {
  return err instanceof Database.SqliteError && err.code === code;
}

/**
 * Maps a failure inside SQLite to the project's errors, naming the file.
 * DumpErrors pass through; anything not from SQLite (a caller's iterator
 * throwing, say) is rethrown as is.
 */
function sqliteFailure(context: string, file: string, err: unknown): unknown {
  if (err instanceof DumpError || !(err instanceof Database.SqliteError)) return err;
  const code = err.code;
  const where = { file };
  if (code === 'SQLITE_NOTADB') return new CorruptDumpError(`${file}: not an SQLite database`, where, { cause: err });
  if (code.startsWith('SQLITE_CORRUPT')) {
    return new CorruptDumpError(`${file}: corrupt index: ${err.message}`, where, { cause: err });
  }
  if (code === 'SQLITE_CANTOPEN' || code.startsWith('SQLITE_CANTOPEN_')) {
    return new DumpError('IO', `${context}: ${file}: cannot open: ${err.message}`, where, { cause: err });
  }
  if (/^SQLITE_(IOERR|FULL|READONLY|PERM|BUSY|LOCKED|PROTOCOL|AUTH)/.test(code)) {
    return new DumpError('IO', `${context}: ${file}: ${err.message}`, where, { cause: err });
  }
  return new InternalError(`${context}: ${file}: ${code}: ${err.message}`, where, { cause: err });
}
