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
 * An exclusive lock on DUMPDIR for `lkcd save`: a lock file created with
 * O_EXCL holding the owner's pid. A second save refuses with one line; a
 * lock left by a killed save (its pid gone) is taken over.
 */
export function acquireSaveLock(dumpdir: string): () => void {
  const file = path.join(dumpdir, '.lkcd-save.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o600);
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      return () => { try { fs.unlinkSync(file); } catch { /* already gone */ } };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError('locking DUMPDIR', e as NodeJS.ErrnoException);
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) {
        throw new DumpError('IO', `another lkcd save (pid ${pid}) is saving into ${dumpdir}; try again when it has finished`, { file });
      }
      fs.rmSync(file, { force: true });
    }
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
