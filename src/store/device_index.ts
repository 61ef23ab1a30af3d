import type { Database as Db } from 'better-sqlite3';
import { UsageError } from '../codec/errors.js';

/**
 * One device dump a saved dump carries (schema version 6): the name its
 * driver gave it, the driver, its size, its sha256, and where its copy is
 * under DUMPDIR/N (devices/<name>). Field names are the table's columns.
 */
export interface DeviceDumpRow {
  /** Order in which the drivers added the dumps (0 first). */
  seq: number;
  name: string;
  driver: string;
  size: number;
  sha256: string;
  /** Path relative to DUMPDIR/N. */
  file: string;
}

const COLUMNS = ['seq', 'name', 'driver', 'size', 'sha256', 'file'] as const satisfies ReadonlyArray<keyof DeviceDumpRow>;

/** Checks a row before it is written: a bad one is a caller's bug, said in one line. */
export function checkDeviceDumpRow(n: number, r: DeviceDumpRow): void {
  if (!/^[0-9a-f]{64}$/.test(r.sha256)) throw new UsageError(`dump ${n}: device dump ${r.name}: sha256 '${r.sha256}' is not 64 lower-case hex digits`);
  if (!Number.isSafeInteger(r.seq) || r.seq < 0 || !Number.isSafeInteger(r.size) || r.size < 0) throw new UsageError(`dump ${n}: device dump ${r.name}: bad seq or size`);
  if (r.name === '' || r.name.includes('/') || r.name === '.' || r.name === '..') throw new UsageError(`dump ${n}: device dump name '${r.name}' cannot be a file name`);
}

/** Inserts dump n's device dump rows (inside the caller's transaction). */
export function insertDeviceDumps(db: Db, n: number, rows: Iterable<DeviceDumpRow>): void {
  const ins = db.prepare(`INSERT INTO device_dumps (dump_n, ${COLUMNS.join(', ')}) VALUES (?, ${COLUMNS.map(() => '?').join(', ')})`);
  for (const r of rows) {
    checkDeviceDumpRow(n, r);
    ins.run(n, ...COLUMNS.map((c) => r[c]));
  }
}

export function deleteDeviceDumps(db: Db, n: number): void {
  db.prepare('DELETE FROM device_dumps WHERE dump_n = ?').run(n);
}

/** Dump n's device dumps, in the order they were added. */
export function listDeviceDumps(db: Db, n: number): DeviceDumpRow[] {
  return db.prepare(`SELECT ${COLUMNS.join(', ')} FROM device_dumps WHERE dump_n = ? ORDER BY seq`).all(n) as DeviceDumpRow[];
}
