import fs from 'node:fs';
import path from 'node:path';
import { ioError } from '../codec/index.js';

/**
 * Crash-safe replacement of a file: write a temporary sibling, fsync it,
 * rename it over the target, fsync the directory. A reader sees the old
 * content or the new, never a half-written file.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  try {
    const fd = fs.openSync(tmp, 'w', mode);
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
    fsyncDir(path.dirname(file));
  } catch (e) {
    try { fs.unlinkSync(tmp); } catch { /* the temporary may not exist */ }
    throw ioError(`writing ${file}`, e as NodeJS.ErrnoException);
  }
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

/** mkdir -p with mode 0700 (dump data is kernel memory). */
export function ensureDir(dir: string, mode = 0o700): void {
  try {
    fs.mkdirSync(dir, { recursive: true, mode });
  } catch (e) {
    throw ioError('creating directory', e as NodeJS.ErrnoException);
  }
}
