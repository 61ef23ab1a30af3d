/**
 * Copies /proc/vmcore of a capture kernel to a file, as `cp /proc/vmcore`
 * would: streamed in chunks of VMCORE_COPY_CHUNK (memory stays bounded
 * whatever the RAM size), pages that are all zero left as holes, written
 * under a temporary name with mode 0600, fsynced and renamed into place.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DumpError, toSafeNumber, wrapError } from '../codec/index.js';
import { fsyncDir, PAGE_SIZE } from '../machine/index.js';
import { procVmcore, readProcVmcore, type Kernel } from '../kernel/index.js';

export const VMCORE_COPY_CHUNK = 1 << 20;

export interface ProcVmcoreCopy {
  bytes: bigint;
}

/** Writes the running capture kernel's /proc/vmcore to `file`. */
export function copyProcVmcore(kernel: Kernel, file: string, onProgress?: (done: bigint, total: bigint) => void): ProcVmcoreCopy {
  const layout = procVmcore(kernel);
  if (!layout) throw new DumpError('NOINPUT', '/proc/vmcore: no such file (this kernel was not booted by kexec -p with elfcorehdr=, or its vmcore_init failed: see machine dmesg)');
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  const total = layout.size;
  let fd: number | undefined;
  try {
    const st = fs.lstatSync(file, { throwIfNoEntry: false });
    if (st && !st.isFile()) throw new DumpError('IO', `writing ${file}: refusing to replace something that is not a regular file`, { file });
    fd = fs.openSync(tmp, 'wx', 0o600);
    fs.ftruncateSync(fd, toSafeNumber(total, '/proc/vmcore size'));
    const buf = Buffer.alloc(VMCORE_COPY_CHUNK);
    const zero = Buffer.alloc(PAGE_SIZE);
    for (let pos = 0n; pos < total;) {
      const n = Number(total - pos < BigInt(VMCORE_COPY_CHUNK) ? total - pos : BigInt(VMCORE_COPY_CHUNK));
      const piece = buf.subarray(0, n);
      readProcVmcore(kernel, layout, pos, piece);
      for (let at = 0; at < n; at += PAGE_SIZE) {
        const page = piece.subarray(at, Math.min(at + PAGE_SIZE, n));
        if (page.equals(zero.subarray(0, page.length))) continue;
        let done = 0;
        while (done < page.length) done += fs.writeSync(fd, page, done, page.length - done, Number(pos) + at + done);
      }
      pos += BigInt(n);
      onProgress?.(pos, total);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
    fsyncDir(dir);
  } catch (e) {
    if (fd !== undefined) { try { fs.closeSync(fd); } catch { /* the first error is the one to report */ } }
    try { fs.unlinkSync(tmp); } catch { /* may not exist */ }
    throw wrapError(`writing ${file}`, e);
  }
  return { bytes: total };
}
