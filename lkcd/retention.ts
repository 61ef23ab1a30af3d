/**
 * Removing saved dumps: `lkcd rm N`, and DUMP_KEEP=N after each save (as
 * savecore -m keeps the newest N). A dump goes out of the index and out of
 * DUMPDIR together, and `bounds` is never lowered, so N is never reused.
 * Crash-safe in two steps: DUMPDIR/N is renamed to .removing-N (no longer
 * a dump to reindex or to save over), then the rows are deleted in one
 * transaction, then the files; a rerun after a kill finishes the job.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DumpError } from '../src/codec/index.js';
import { fsyncDir } from '../src/machine/index.js';
import { DumpIndex, INDEX_FILE } from '../src/store/index.js';
import { acquireSaveLock, dumpDirOf, readBounds } from './dumpdir.js';

/** Most dumps DUMP_KEEP removes after one save (a bound on the loop; the rest go after the next save). */
const MAX_REMOVED_PER_SAVE = 10_000;

function removingDirOf(dumpdir: string, n: number): string {
  return path.join(dumpdir, `.removing-${n}`);
}

function bytesUnder(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!e.isFile()) continue;
    files++;
    bytes += fs.statSync(path.join(dir, e.name)).size;
  }
  return { files, bytes };
}

/** Removes dump n from the index and DUMPDIR; the caller holds the DUMPDIR lock. Returns its line. */
function removeLocked(index: DumpIndex, dumpdir: string, n: number, who: string): string {
  const dir = dumpDirOf(dumpdir, n);
  const removing = removingDirOf(dumpdir, n);
  const rec = index.getDump(n);
  if (!rec && !fs.existsSync(dir) && !fs.existsSync(removing)) throw new DumpError('NOINPUT', `no dump ${n} in ${dumpdir} (see lkcd list)`);
  const outside = rec ? path.resolve(dir, rec.file) : null;
  let what = { files: 0, bytes: 0 };
  if (fs.existsSync(dir)) {
    what = bytesUnder(dir);
    fs.rmSync(removing, { recursive: true, force: true });
    fs.renameSync(dir, removing);
    fsyncDir(dumpdir);
  } else if (fs.existsSync(removing)) {
    what = bytesUnder(removing);
  }
  index.removeDump(n);
  fs.rmSync(removing, { recursive: true, force: true });
  fsyncDir(dumpdir);
  // A kdump vmcore stays where kdumpctl save wrote it (under the machine's /var/crash): not DUMPDIR's to delete.
  const kept = outside && path.dirname(outside) !== dir && fs.existsSync(outside) ? `; ${outside} is not in DUMPDIR and was left where it is` : '';
  return `${who}: removed dump ${n} (${what.files} files, ${what.bytes} bytes)${kept}; the next dump is still ${readBounds(dumpdir)}`;
}

/** `lkcd rm N`. */
export function lkcdRemove(dumpdir: string, n: number): string {
  if (!fs.existsSync(path.join(dumpdir, INDEX_FILE)) && !fs.existsSync(dumpDirOf(dumpdir, n))) throw new DumpError('NOINPUT', `no dump ${n} in ${dumpdir} (see lkcd list)`);
  const unlock = acquireSaveLock(dumpdir);
  try {
    const index = DumpIndex.open(dumpdir);
    try {
      return removeLocked(index, dumpdir, n, 'lkcd rm');
    } finally { index.close(); }
  } finally { unlock(); }
}

/** DUMP_KEEP=keep: removes the oldest dumps (lowest N) beyond the newest `keep`; 0 keeps all. Returns a line per dump removed. */
export function applyRetention(dumpdir: string, keep: number): string[] {
  if (keep <= 0 || !fs.existsSync(path.join(dumpdir, INDEX_FILE))) return [];
  const unlock = acquireSaveLock(dumpdir);
  try {
    const index = DumpIndex.open(dumpdir);
    try {
      const ns = index.listDumps().map((d) => d.n).sort((a, b) => a - b);
      const old = ns.slice(0, Math.max(0, ns.length - keep)).slice(0, MAX_REMOVED_PER_SAVE);
      return old.map((n) => removeLocked(index, dumpdir, n, `lkcd save: DUMP_KEEP=${keep}`));
    } finally { index.close(); }
  } finally { unlock(); }
}
