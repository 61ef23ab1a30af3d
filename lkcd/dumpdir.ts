import fs from 'node:fs';
import path from 'node:path';
import { CorruptDumpError, DumpError, ioError } from '../src/codec/index.js';
import { writeFileAtomic } from '../src/machine/index.js';

/** DUMPDIR/bounds: the N the next saved dump gets (a decimal number). */
export function readBounds(dumpdir: string): number {
  const file = path.join(dumpdir, 'bounds');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw ioError('reading bounds', e as NodeJS.ErrnoException);
  }
  if (!/^\d{1,9}\s*$/.test(text)) throw new CorruptDumpError(`${file}: '${text.trim().slice(0, 20)}' is not a dump number`, { file });
  return Number(text.trim());
}

export function writeBounds(dumpdir: string, next: number): void {
  writeFileAtomic(path.join(dumpdir, 'bounds'), `${next}\n`, 0o600);
}

/** The directory of dump N. */
export function dumpDirOf(dumpdir: string, n: number): string {
  return path.join(dumpdir, String(n));
}

/**
 * An exclusive lock on DUMPDIR for `lkcd save`: a lock file holding the
 * owner's pid, created atomically (link(2) of a file already written). A second save refuses with one line; a
 * lock left by a killed save (its pid gone) is taken over.
 */
export function acquireSaveLock(dumpdir: string): () => void {
  const file = path.join(dumpdir, '.lkcd-save.lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    // The lock appears with its pid already in it (written aside, then linked into place), so a
    // second save never reads an empty lock and takes it for a stale one.
    const tmp = `${file}.${process.pid}`;
    fs.writeFileSync(tmp, `${process.pid}\n`, { mode: 0o600 });
    try {
      fs.linkSync(tmp, file);
      return () => { try { fs.unlinkSync(file); } catch { /* already gone */ } };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError('locking DUMPDIR', e as NodeJS.ErrnoException);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    let holder: string;
    try {
      holder = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile: try again
      throw ioError('reading the DUMPDIR lock', e as NodeJS.ErrnoException);
    }
    const pid = Number(holder.trim());
    if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) {
      throw new DumpError('IO', `another lkcd save (pid ${pid}) is saving into ${dumpdir}; try again when it has finished`, { file });
    }
    fs.rmSync(file, { force: true });
  }
  throw new DumpError('IO', `cannot lock ${dumpdir}`, { file });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
