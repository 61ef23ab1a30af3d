import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { CorruptDumpError, DumpError, InternalError, UsageError } from '../codec/errors.js';
import type { DumpIndex } from './dump_index.js';
import type { LogLine } from './types.js';

/**
 * One pstore file archived by `lkcd pstore save` (schema version 4): where
 * its copy is, what the record was, and the crash it belongs to. Field
 * names are the table's columns.
 */
export interface PstoreRecordRow {
  /** Absolute path of DUMPDIR/pstore/<date>. */
  dir: string;
  /** The pstorefs file name: dmesg-ramoops-0, console-ramoops-0, devcoredump-ramoops-0, ... */
  file: string;
  /** dmesg, console, pmsg, ftrace, devcoredump. */
  type: string;
  record_id: number;
  /** The file's mtime: the record's time, or when pstorefs was mounted. */
  time_sec: number;
  /** Time of the crash the record belongs to (the panic record's), 0 when unknown. */
  crash_time: number;
  size: number;
  compressed: boolean;
  /** "Panic", "Oops", ... for a dmesg record; "" otherwise. */
  reason: string;
  /** N of "Panic#N"; 0 when not a dmesg record. */
  oops_count: number;
  /** From "Kernel panic - not syncing: ..."; "" when the crash had none. */
  panic_string: string;
  /** The ECC notice pstore appended, "" without ECC. */
  ecc_notice: string;
  sha256: string;
  saved_at: number;
}

/** An archived record with its id and the dump of the same crash, if one is indexed. */
export interface PstoreListed extends PstoreRecordRow {
  id: number;
  dump_n: number | null;
}

export interface PstoreLogHit {
  id: number;
  dir: string;
  file: string;
  seq: number;
  ts_nsec: bigint;
  text: string;
}

const COLUMNS = [
  'dir', 'file', 'type', 'record_id', 'time_sec', 'crash_time', 'size', 'compressed', 'reason', 'oops_count',
  'panic_string', 'ecc_notice', 'sha256', 'saved_at',
] as const satisfies ReadonlyArray<keyof PstoreRecordRow>;

type Row = Omit<PstoreRecordRow, 'compressed'> & { compressed: number; id: number; dump_n?: number | null };

/**
 * The pstore tables of a DUMPDIR's index, on the DumpIndex's connection:
 * archived records, their log lines under FTS5 beside the dumps' (so a
 * search finds both), and the view linking each record to the dump of the
 * same crash. Receives plain records; never reads a pstore file.
 */
export class PstoreIndex {
  private constructor(private readonly db: Db, private readonly file: string) {}

  static of(index: DumpIndex): PstoreIndex {
    return new PstoreIndex(index.connection, index.file);
  }

  /**
   * Adds a record and its log lines in one transaction; a record already
   * indexed (the same sha256 and time) is not added again (`inserted:
   * false`). The same bytes at another time are another crash's record.
   */
  add(rec: PstoreRecordRow, lines: Iterable<LogLine>): { id: number; inserted: boolean } {
    if (!/^[0-9a-f]{64}$/.test(rec.sha256)) throw new UsageError(`pstore record ${rec.file}: sha256 '${rec.sha256}' is not 64 lower-case hex digits`);
    for (const k of ['record_id', 'time_sec', 'crash_time', 'size', 'oops_count', 'saved_at'] as const) {
      if (!Number.isSafeInteger(rec[k]) || rec[k] < 0) throw new UsageError(`pstore record ${rec.file}: ${k} ${rec[k]} is not a non-negative integer`);
    }
    return this.guard(`indexing pstore record ${rec.file}`, () => this.db.transaction(() => {
      const same = this.db.prepare('SELECT id FROM pstore_records WHERE sha256 = ? AND time_sec = ?').pluck().get(rec.sha256, rec.time_sec) as number | undefined;
      if (same !== undefined) return { id: same, inserted: false };
      const r = this.db.prepare(`INSERT INTO pstore_records (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})`)
        .run(...COLUMNS.map((c) => (c === 'compressed' ? (rec.compressed ? 1 : 0) : rec[c])));
      const id = Number(r.lastInsertRowid);
      const ins = this.db.prepare('INSERT INTO pstore_log (text, record, seq, ts_nsec, level) VALUES (?, ?, ?, ?, ?)');
      for (const l of lines) ins.run(l.text, id, l.seq, l.ts_nsec, l.level);
      return { id, inserted: true };
    }).immediate());
  }

  /** The first record archived with this sha256, or null. */
  findBySha256(sha: string): PstoreListed | null {
    const row = this.guard('looking up a pstore record', () => this.db.prepare(`${SELECT} WHERE p.sha256 = ? ORDER BY p.id LIMIT 1`).get(sha.toLowerCase()) as Row | undefined);
    return row ? toListed(row) : null;
  }

  /** The record archived with this sha256 and time (its file's mtime, seconds), or null. */
  findRecord(sha: string, timeSec: number): PstoreListed | null {
    const row = this.guard('looking up a pstore record', () => this.db.prepare(`${SELECT} WHERE p.sha256 = ? AND p.time_sec = ?`).get(sha.toLowerCase(), timeSec) as Row | undefined);
    return row ? toListed(row) : null;
  }

  /** Every archived record, oldest first, each with the dump of its crash (the closest in time). */
  list(): PstoreListed[] {
    return this.guard('listing pstore records', () => (this.db.prepare(`${SELECT} ORDER BY p.id`).all() as Row[]).map(toListed));
  }

  /** The log lines indexed for a record, in order. */
  logLines(id: number): LogLine[] {
    return this.guard('reading pstore log lines', () => (this.db.prepare('SELECT seq, ts_nsec, level, text FROM pstore_log WHERE record = ? ORDER BY rowid')
      .safeIntegers(true).all(id) as Array<{ seq: bigint; ts_nsec: bigint; level: bigint; text: string }>)
      .map((l) => ({ seq: Number(l.seq), ts_nsec: l.ts_nsec, level: Number(l.level), text: l.text })));
  }

  /** Log lines of archived records containing `query` as a phrase, as DumpIndex.searchLog matches dumps'. */
  searchLog(query: string): PstoreLogHit[] {
    if (!/[\p{L}\p{N}]/u.test(query)) throw new UsageError(`search query ${JSON.stringify(query)} has no words to look for`);
    const phrase = `"${query.replace(/"/g, '""')}"`;
    return this.guard('searching pstore logs', () => (this.db.prepare(
      'SELECT l.record AS id, p.dir AS dir, p.file AS file, l.seq AS seq, l.ts_nsec AS ts_nsec, l.text AS text FROM pstore_log l JOIN pstore_records p ON p.id = l.record WHERE pstore_log MATCH ? ORDER BY l.rowid')
      .safeIntegers(true).all(phrase) as Array<{ id: bigint; dir: string; file: string; seq: bigint; ts_nsec: bigint; text: string }>)
      .map((h) => ({ id: Number(h.id), dir: h.dir, file: h.file, seq: Number(h.seq), ts_nsec: h.ts_nsec, text: h.text })));
  }

  private guard<T>(context: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof DumpError || !(err instanceof Database.SqliteError)) throw err;
      if (err.code.startsWith('SQLITE_CORRUPT')) throw new CorruptDumpError(`${this.file}: corrupt index: ${err.message}`, { file: this.file }, { cause: err });
      if (/^SQLITE_(IOERR|FULL|READONLY|PERM|BUSY|LOCKED|CANTOPEN)/.test(err.code)) throw new DumpError('IO', `${context}: ${this.file}: ${err.message}`, { file: this.file }, { cause: err });
      throw new InternalError(`${context}: ${this.file}: ${err.code}: ${err.message}`, { file: this.file }, { cause: err });
    }
  }
}

const SELECT = `SELECT p.id AS id, ${COLUMNS.map((c) => `p.${c} AS ${c}`).join(', ')},
  (SELECT l.dump_n FROM pstore_dump_links l WHERE l.record = p.id ORDER BY l.skew, l.dump_n LIMIT 1) AS dump_n
  FROM pstore_records p`;

function toListed(r: Row): PstoreListed {
  return { ...r, compressed: r.compressed !== 0, dump_n: r.dump_n ?? null };
}
