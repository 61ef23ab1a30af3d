import type { Database } from 'better-sqlite3';
import { CorruptDumpError, DumpError, InternalError } from '../codec/errors.js';

/**
 * PRAGMA application_id of an lkcd index ("LKCD" in ASCII), so that some
 * other program's SQLite file in DUMPDIR is refused instead of migrated.
 */
export const APPLICATION_ID = 0x4c4b4344;

/** One step of the schema, from `version - 1` to `version`. */
export interface Migration {
  readonly version: number;
  readonly description: string;
  /**
   * The step rebuilds a table other tables refer to: it runs with foreign
   * keys off (SQLite's procedure for schema changes ALTER TABLE cannot
   * make), and must leave PRAGMA foreign_key_check empty.
   */
  readonly rebuildsTables?: boolean;
  up(db: Database): void;
}

/**
 * Every schema change ever shipped, oldest first. Never edit a released
 * entry: files in the field were built by it. Append a new one instead.
 *
 * Log lines live in an FTS5 table whose rowid is (n << LOG_ROWID_SHIFT) + the
 * line's rank by seq within the dump, so one dump's lines are a rowid range:
 * listing and deleting them need no scan, and rowid order is (n, seq) order.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'dumps, pages, missing ranges, FTS5 log',
    up(db) {
      db.exec(`
        PRAGMA application_id = ${APPLICATION_ID};
        CREATE TABLE schema_history (
          version     INTEGER PRIMARY KEY,
          applied_at  INTEGER NOT NULL,
          description TEXT NOT NULL
        );
        CREATE TABLE dumps (
          n                INTEGER PRIMARY KEY CHECK (n >= 0),
          dir              TEXT NOT NULL,
          time_sec         INTEGER NOT NULL,
          time_usec        INTEGER NOT NULL,
          host             TEXT NOT NULL,
          release          TEXT NOT NULL,
          version          TEXT NOT NULL,
          machine          TEXT NOT NULL,
          panic_string     TEXT NOT NULL,
          level            INTEGER NOT NULL,
          compress         INTEGER NOT NULL,
          flags            INTEGER NOT NULL,
          pages            INTEGER NOT NULL,
          pages_compressed INTEGER NOT NULL,
          raw_bytes        INTEGER NOT NULL,
          stored_bytes     INTEGER NOT NULL,
          complete         INTEGER NOT NULL CHECK (complete IN (0, 1)),
          missing_pages    INTEGER NOT NULL,
          sha256           TEXT NOT NULL UNIQUE,
          signature        TEXT NOT NULL,
          saved_at         INTEGER NOT NULL
        );
        CREATE TABLE pages (
          dump_n INTEGER NOT NULL REFERENCES dumps(n),
          pfn    INTEGER NOT NULL,
          offset INTEGER NOT NULL,
          size   INTEGER NOT NULL,
          flags  INTEGER NOT NULL,
          PRIMARY KEY (dump_n, pfn)
        ) WITHOUT ROWID;
        CREATE TABLE missing (
          dump_n    INTEGER NOT NULL REFERENCES dumps(n),
          start_pfn INTEGER NOT NULL,
          end_pfn   INTEGER NOT NULL CHECK (end_pfn > start_pfn),
          PRIMARY KEY (dump_n, start_pfn)
        ) WITHOUT ROWID;
        CREATE VIRTUAL TABLE log USING fts5(
          text, dump_n UNINDEXED, seq UNINDEXED, ts_nsec UNINDEXED, level UNINDEXED
        );
      `);
    },
  },
  {
    version: 2,
    description: 'dumps.signature_text; index on dumps(signature)',
    up(db) {
      // Version 1 kept no call site, so its rows cannot be re-signed; their
      // panic string is the closest readable stand-in.
      db.exec(`
        ALTER TABLE dumps ADD COLUMN signature_text TEXT NOT NULL DEFAULT '';
        UPDATE dumps SET signature_text = panic_string;
        CREATE INDEX dumps_signature ON dumps(signature);
      `);
    },
  },
  {
    version: 3,
    description: 'pages.crc32: a checksum of each record\'s data, so verify names a damaged page',
    up(db) {
      // Rows indexed before version 3 have no checksum (NULL): verify falls back to decompression alone.
      db.exec('ALTER TABLE pages ADD COLUMN crc32 INTEGER');
    },
  },
  {
    version: 4,
    description: 'dumps.state, checksum, damaged/memory/dumper/not-selected pages; missing.reason',
    up(db) {
      // Rows from before version 4 were never checked against checksums: 'unverified'; their
      // listed ranges had no reason. Their accounting is unknown (0 or NULL).
      db.exec(`
        ALTER TABLE dumps ADD COLUMN state TEXT NOT NULL DEFAULT 'complete'
          CHECK (state IN ('complete', 'truncated', 'damaged'));
        UPDATE dumps SET state = CASE WHEN complete = 1 THEN 'complete' ELSE 'truncated' END;
        ALTER TABLE dumps ADD COLUMN checksum TEXT NOT NULL DEFAULT 'unverified'
          CHECK (checksum IN ('verified', 'failed', 'unverified'));
        ALTER TABLE dumps ADD COLUMN damaged_pages INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE dumps ADD COLUMN memory_pages INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE dumps ADD COLUMN dumper_pages INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE dumps ADD COLUMN not_selected_pages INTEGER;
        ALTER TABLE missing ADD COLUMN reason TEXT NOT NULL DEFAULT 'unspecified';
      `);
    },
  },
  {
    version: 5,
    description: 'pstore records archived by lkcd pstore save, their log lines (FTS5), and their link to the dump of the same crash',
    up(db) {
      // A record belongs to the dump of the same crash when both carry the same panic string
      // within a minute: a view, so the link holds whichever of lkcd save and lkcd pstore save ran first.
      db.exec(`
        CREATE TABLE pstore_records (
          id           INTEGER PRIMARY KEY,
          dir          TEXT NOT NULL,
          file         TEXT NOT NULL,
          type         TEXT NOT NULL,
          record_id    INTEGER NOT NULL,
          time_sec     INTEGER NOT NULL,
          crash_time   INTEGER NOT NULL,
          size         INTEGER NOT NULL,
          compressed   INTEGER NOT NULL CHECK (compressed IN (0, 1)),
          reason       TEXT NOT NULL,
          oops_count   INTEGER NOT NULL,
          panic_string TEXT NOT NULL,
          ecc_notice   TEXT NOT NULL,
          sha256       TEXT NOT NULL UNIQUE,
          saved_at     INTEGER NOT NULL,
          UNIQUE (dir, file)
        );
        CREATE INDEX pstore_records_crash ON pstore_records(panic_string, crash_time);
        CREATE VIRTUAL TABLE pstore_log USING fts5(
          text, record UNINDEXED, seq UNINDEXED, ts_nsec UNINDEXED, level UNINDEXED
        );
        CREATE VIEW pstore_dump_links AS
          SELECT p.id AS record, d.n AS dump_n, abs(d.time_sec - p.crash_time) AS skew
          FROM pstore_records p JOIN dumps d
            ON p.panic_string <> '' AND d.panic_string = p.panic_string AND abs(d.time_sec - p.crash_time) <= 60;
      `);
    },
  },
  {
    version: 6,
    description: 'dumps.sha256 no longer UNIQUE (an identical dump of another crash is a dump of its own); index on dumps(sha256)',
    rebuildsTables: true,
    up(db) {
      rebuildTable(db, 'dumps', (sql) => {
        const out = sql.replace(/(\bsha256\s+TEXT\s+NOT\s+NULL)\s+UNIQUE\b/i, '$1');
        if (out === sql) throw new InternalError('migration 6: the dumps table has no sha256 ... UNIQUE column to relax');
        return out;
      });
      db.exec('CREATE INDEX dumps_sha256 ON dumps(sha256)');
    },
  },
  {
    version: 7,
    description: 'a pstore record is its sha256 and its time: pstore_records.sha256 no longer UNIQUE, UNIQUE (sha256, time_sec) instead',
    rebuildsTables: true,
    up(db) {
      // The files pstorefs shows carry no time in their text (it is their mtime): the records of
      // two crashes may be byte-identical, and each is kept.
      rebuildTable(db, 'pstore_records', (sql) => {
        const out = sql.replace(/(\bsha256\s+TEXT\s+NOT\s+NULL)\s+UNIQUE\b/i, '$1');
        if (out === sql) throw new InternalError('migration 7: the pstore_records table has no sha256 ... UNIQUE column to relax');
        return out;
      });
      db.exec('CREATE UNIQUE INDEX pstore_records_identity ON pstore_records(sha256, time_sec)');
    },
  },
  {
    version: 8,
    description: 'dumps.design, format, file, compression, rle_convention, source, log_error, notes: one index for every design and format',
    up(db) {
      // Every row before version 8 is a dump lkcd save wrote: LKCD, dump.N in its directory, RLE in the
      // kernel's convention (the only one our writer uses), its log read from its memory.
      db.exec(`
        ALTER TABLE dumps ADD COLUMN design TEXT NOT NULL DEFAULT 'lkcd-softboot'
          CHECK (design IN ('lkcd-softboot', 'kdump', 'fadump', 'import'));
        ALTER TABLE dumps ADD COLUMN format TEXT NOT NULL DEFAULT 'lkcd'
          CHECK (format IN ('lkcd', 'diskdump', 'elf'));
        ALTER TABLE dumps ADD COLUMN file TEXT NOT NULL DEFAULT '';
        UPDATE dumps SET file = 'dump.' || n;
        ALTER TABLE dumps ADD COLUMN compression TEXT NOT NULL DEFAULT 'none';
        UPDATE dumps SET compression = CASE compress WHEN 1 THEN 'rle' WHEN 2 THEN 'gzip' ELSE 'none' END;
        ALTER TABLE dumps ADD COLUMN rle_convention TEXT CHECK (rle_convention IN ('kernel', 'libkdumpfile'));
        UPDATE dumps SET rle_convention = 'kernel' WHERE compress = 1;
        ALTER TABLE dumps ADD COLUMN source TEXT NOT NULL DEFAULT '';
        ALTER TABLE dumps ADD COLUMN log_error TEXT NOT NULL DEFAULT '';
        ALTER TABLE dumps ADD COLUMN notes TEXT NOT NULL DEFAULT '';
      `);
    },
  },
  {
    version: 9,
    description: 'device_dumps: the device dumps a dump carries (vmcoredd), saved as DUMPDIR/N/devices/<name>',
    up(db) {
      db.exec(`
        CREATE TABLE device_dumps (
          dump_n INTEGER NOT NULL REFERENCES dumps(n),
          seq    INTEGER NOT NULL CHECK (seq >= 0),
          name   TEXT NOT NULL,
          driver TEXT NOT NULL,
          size   INTEGER NOT NULL CHECK (size >= 0),
          sha256 TEXT NOT NULL,
          file   TEXT NOT NULL,
          PRIMARY KEY (dump_n, name)
        ) WITHOUT ROWID;
      `);
    },
  },
];

/**
 * Rebuilds `table` with the CREATE TABLE statement `edit` makes of its
 * current one (SQLite's twelve-step procedure: new table, copy, drop,
 * rename), keeping every row, its indexes and the views over it. Built
 * from the table's own stored SQL, so columns added by earlier migrations
 * come along. Runs with foreign keys off (a migration marked rebuildsTables).
 */
function rebuildTable(db: Database, table: string, edit: (createSql: string) => string): void {
  const sql = db.prepare("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?").pluck().get(table) as string | undefined;
  if (!sql) throw new InternalError(`rebuilding ${table}: no such table`);
  const created = edit(sql);
  const head = new RegExp(`^CREATE TABLE\\s+"?${table}"?\\s*\\(`, 'i');
  if (!head.test(created)) throw new InternalError(`rebuilding ${table}: unexpected CREATE TABLE statement`);
  const indexes = db.prepare("SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL").pluck().all(table) as string[];
  const views = db.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'view'").all() as Array<{ name: string; sql: string }>;
  const temp = `${table}_rebuilt`;
  for (const v of views) db.exec(`DROP VIEW "${v.name}"`);
  db.exec(created.replace(head, `CREATE TABLE "${temp}" (`));
  db.exec(`INSERT INTO "${temp}" SELECT * FROM "${table}"`);
  db.exec(`DROP TABLE "${table}"`);
  db.exec(`ALTER TABLE "${temp}" RENAME TO "${table}"`);
  for (const i of indexes) db.exec(i);
  for (const v of views) db.exec(v.sql);
}

/** The version a file has after every migration has run. */
export const SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1].version;

/** Bits of the log rowid below the dump number. */
export const LOG_ROWID_SHIFT = 32n;

export function userVersion(db: Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/**
 * Checks that `db` is an lkcd index this code can read: an empty file (a new
 * index), or one with our application_id and a version no newer than ours.
 * Returns its version.
 */
export function checkSchema(db: Database, file: string): number {
  const version = userVersion(db);
  const appId = db.pragma('application_id', { simple: true }) as number;
  if (version === 0) {
    const objects = db.prepare('SELECT count(*) FROM sqlite_schema').pluck().get() as number;
    if (objects !== 0 || appId !== 0) {
      throw new CorruptDumpError(`${file}: an SQLite database, but not an lkcd index (no schema version)`, { file });
    }
    return 0;
  }
  if (appId !== APPLICATION_ID) {
    throw new CorruptDumpError(
      `${file}: an SQLite database, but not an lkcd index (application_id 0x${(appId >>> 0).toString(16)})`, { file });
  }
  if (version > SCHEMA_VERSION) {
    throw new DumpError('UNSUPPORTED',
      `${file}: index schema version ${version} is newer than this lkcd supports (${SCHEMA_VERSION})`, { file });
  }
  return version;
}

/**
 * Runs, in order, every migration newer than the file. Each step is its own
 * IMMEDIATE transaction that re-reads the version first, so two processes
 * opening an old index at once migrate it once.
 */
export function migrate(db: Database, file: string, now: () => number): number {
  for (const m of MIGRATIONS) {
    // PRAGMA foreign_keys is a no-op inside a transaction: set it around the step.
    const foreignKeys = db.pragma('foreign_keys', { simple: true }) as number;
    if (m.rebuildsTables && userVersion(db) < m.version) db.pragma('foreign_keys = OFF');
    try {
      db.transaction(() => {
        const current = checkSchema(db, file);
        if (current >= m.version) return;
        if (current !== m.version - 1) {
          throw new InternalError(`MIGRATIONS skips from version ${current} to ${m.version}`, { file });
        }
        m.up(db);
        if (m.rebuildsTables) {
          const broken = db.pragma('foreign_key_check') as Array<{ table: string; parent: string }>;
          if (broken.length) {
            throw new CorruptDumpError(`${file}: migration ${m.version}: ${broken.length} rows of ${broken[0].table} refer to missing ${broken[0].parent} rows`, { file });
          }
        }
        db.prepare('INSERT INTO schema_history (version, applied_at, description) VALUES (?, ?, ?)')
          .run(m.version, now(), m.description);
        db.pragma(`user_version = ${m.version}`);
      }).immediate();
    } finally {
      if (m.rebuildsTables) db.pragma(`foreign_keys = ${foreignKeys ? 'ON' : 'OFF'}`);
    }
  }
  return userVersion(db);
}
