import fs from 'node:fs';
import { DumpError, ioError } from '../src/codec/index.js';

/** The largest initramfs kexec -p takes; a capture kernel's is a few MiB, and a bound keeps /dev/zero out. */
export const MAX_INITRD_BYTES = 256 << 20;

/** Reads an initramfs for kexec --initrd: a regular file, at most MAX_INITRD_BYTES. */
export function readInitrd(file: string): Uint8Array {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw ioError('reading initrd', e as NodeJS.ErrnoException);
  }
  if (!st.isFile()) throw new DumpError('IO', `reading initrd: ${file}: not a regular file`, { file });
  if (st.size > MAX_INITRD_BYTES) throw new DumpError('USAGE', `initrd ${file} is ${st.size} bytes, more than the ${MAX_INITRD_BYTES} kexec takes`, { file });
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw ioError('reading initrd', e as NodeJS.ErrnoException);
  }
}
