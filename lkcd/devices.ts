/**
 * `lkcd devices N`: the device dumps dump N carries (what the crash
 * recovery kernel's drivers collected, saved by lkcd save in
 * DUMPDIR/N/devices/), and `--extract NAME -o FILE` to copy one out,
 * checked against the sha256 the index recorded.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { CorruptDumpError, DumpError } from '../src/codec/index.js';
import { readRegularFile, writeOutputFile, type MachineRoot } from '../src/machine/index.js';
import { DumpIndex, type DeviceDumpRow } from '../src/store/index.js';
import { dumpDirOf } from './dumpdir.js';
import { sysconfigFor } from './query.js';
import { lkcdProtected } from './sysconfig.js';

/** Dump N's device dumps from the index (NOINPUT when N is not indexed). */
export function deviceDumpList(dumpdir: string, n: number): DeviceDumpRow[] {
  const index = DumpIndex.open(dumpdir, { readonly: true });
  try {
    if (!index.getDump(n)) throw new DumpError('NOINPUT', `no dump ${n} in ${dumpdir} (see lkcd list)`);
    return index.deviceDumps(n);
  } finally {
    index.close();
  }
}

/** One line per device dump: name, driver, size, sha256 (abbreviated), file. */
export function deviceDumpText(n: number, rows: readonly DeviceDumpRow[]): string {
  if (rows.length === 0) return `dump ${n} carries no device dumps\n`;
  const head = 'NAME                                         DRIVER     SIZE       SHA256            FILE\n';
  return head + rows.map((r) => `${r.name.padEnd(44)} ${r.driver.padEnd(10)} ${String(r.size).padStart(9)}  ${r.sha256.slice(0, 16)}  ${r.file}\n`).join('');
}

/**
 * Copies device dump `name` of dump N to `out` (0600, replaced whole):
 * the saved copy, refused when it no longer has the sha256 indexed.
 */
export function extractDeviceDump(root: MachineRoot, n: number, name: string, out: string): { file: string; bytes: number } {
  const conf = sysconfigFor(root);
  const rows = deviceDumpList(conf.DUMPDIR, n);
  const row = rows.find((r) => r.name === name);
  if (!row) {
    throw new DumpError('NOINPUT', `dump ${n} has no device dump '${name}'${rows.length ? ` (it has ${rows.map((r) => r.name).join(', ')})` : ' (it carries none)'}`);
  }
  const file = path.join(dumpDirOf(conf.DUMPDIR, n), row.file);
  const data = readRegularFile(file, row.size, `device dump ${name}`);
  const sha = crypto.createHash('sha256').update(data).digest('hex');
  if (data.length !== row.size || sha !== row.sha256) {
    throw new CorruptDumpError(`${file}: the saved device dump no longer matches the index (${data.length} bytes, sha256 ${sha.slice(0, 16)}...; indexed ${row.size} bytes, ${row.sha256.slice(0, 16)}...)`, { file });
  }
  const written = writeOutputFile(out, data, lkcdProtected(root, conf));
  return { file: written, bytes: data.length };
}
