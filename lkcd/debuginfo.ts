/**
 * The debug vmlinux beside a saved dump, as LKCD kept Kerntypes beside it:
 * `lkcd save` copies boot/vmlinux-<release> to DUMPDIR/N/vmlinux.N when its
 * GNU build ID is the one the dump's kernel recorded (VMCOREINFO BUILD-ID=),
 * and `lkcd show` says where it is and whether it still matches.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DumpError, ioError } from '../src/codec/index.js';
import { buildFileNames, elfFileBuildId } from '../src/kernel/index.js';
import { kernelViewOf, type ProbedDump } from '../src/dump/index.js';

/** The value of `key=` in VMCOREINFO text, or null. */
function vmcoreinfoValue(text: string, key: string): string | null {
  for (const line of text.split('\n')) if (line.startsWith(`${key}=`)) return line.slice(key.length + 1).trim();
  return null;
}

/**
 * The build ID the dump's kernel recorded in its VMCOREINFO (the dump's
 * note, or read from its memory through System.map); null when that
 * kernel recorded none.
 */
export function dumpBuildId(dump: ProbedDump, systemMap: ReadonlyMap<string, bigint> | null): string | null {
  const text = kernelViewOf(dump, systemMap).vmcoreinfo();
  const id = vmcoreinfoValue(text, 'BUILD-ID');
  return id && /^[0-9a-f]{2,128}$/.test(id) ? id : null;
}

export function vmlinuxFileOf(dir: string, n: number): string {
  return path.join(dir, `vmlinux.${n}`);
}

/**
 * Copies the build's vmlinux into the dump directory being written
 * (`tmpDir`) as vmlinux.N (0600, fsynced) if its build ID is the dump's,
 * and returns null. Otherwise copies nothing and returns the line `lkcd
 * save` prints to say why (no vmlinux built, another build's, no build ID
 * in the dump): a kept vmlinux is the normal case, shown by `lkcd show`.
 */
export function saveVmlinux(bootDir: string, release: string, dump: ProbedDump, systemMap: ReadonlyMap<string, bigint> | null, tmpDir: string, n: number): string | null {
  const built = buildFileNames(bootDir, release);
  let want: string | null;
  try {
    want = dumpBuildId(dump, systemMap);
  } catch (e) {
    if (!(e instanceof DumpError)) throw e;
    return `lkcd save: no vmlinux.${n}: ${e.message}`;
  }
  if (!want) return `lkcd save: no vmlinux.${n}: the dump's kernel recorded no build ID (VMCOREINFO has no BUILD-ID)`;
  if (!fs.existsSync(built.vmlinux)) {
    const why = fs.existsSync(built.vmlinuxUnavailable) ? fs.readFileSync(built.vmlinuxUnavailable, 'utf8').trim() : 'it was never built';
    return `lkcd save: no vmlinux.${n}: there is no ${built.vmlinux} (${why})`;
  }
  const have = elfFileBuildId(built.vmlinux);
  if (have !== want) {
    return `lkcd save: no vmlinux.${n}: ${built.vmlinux} has build ID ${have ?? 'none'}, the dump's kernel ${want}`;
  }
  const dest = vmlinuxFileOf(tmpDir, n);
  try {
    fs.copyFileSync(built.vmlinux, dest);
    fs.chmodSync(dest, 0o600);
    const fd = fs.openSync(dest, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
  } catch (e) {
    throw ioError(`copying ${built.vmlinux}`, e as NodeJS.ErrnoException);
  }
  return null;
}

export interface VmlinuxStatus {
  /** DUMPDIR/N/vmlinux.N, or null when the save kept none. */
  file: string | null;
  build_id: string | null;
  dump_build_id: string | null;
  matches: boolean;
}

/** Where dump N's vmlinux is and whether its build ID is still the dump kernel's. */
export function vmlinuxStatus(dir: string, n: number, dump: ProbedDump, systemMap: ReadonlyMap<string, bigint> | null): VmlinuxStatus {
  const file = vmlinuxFileOf(dir, n);
  let dumpId: string | null;
  try {
    dumpId = dumpBuildId(dump, systemMap);
  } catch (e) {
    if (e instanceof DumpError) dumpId = null; // a dump whose VMCOREINFO cannot be read has no build ID to match
    else throw e;
  }
  if (!fs.existsSync(file)) return { file: null, build_id: null, dump_build_id: dumpId, matches: false };
  const id = elfFileBuildId(file);
  return { file, build_id: id, dump_build_id: dumpId, matches: id !== null && id === dumpId };
}

/** The `vmlinux` row of `lkcd show`. */
export function vmlinuxShowText(s: VmlinuxStatus): string {
  if (!s.file) return `none saved with this dump${s.dump_build_id ? ` (the dump's kernel has build ID ${s.dump_build_id})` : ''}`;
  if (s.matches) return `${s.file} (build ID ${s.build_id}, matches the dump)`;
  return `${s.file} (build ID ${s.build_id ?? 'none'} does NOT match the dump's ${s.dump_build_id ?? 'missing build ID'})`;
}
