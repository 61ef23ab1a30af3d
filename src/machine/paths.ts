/**
 * Paths the commands open, resolved and checked in one place: every
 * symbolic link followed (also a dangling one, and in the part of a path
 * that does not exist yet) before a path is compared with the machine root,
 * files that must be regular checked without blocking, reads bounded, and
 * outputs written under a temporary name that can never replace an input.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DumpError, ioError, UsageError, wrapError } from '../codec/index.js';
import { fsyncDir } from './files.js';

/** Links followed in one resolution before it fails, as Linux's MAXSYMLINKS (fs/namei.c). */
export const MAX_SYMLINKS = 40;

/** Bytes read at once by readRegularFile. */
const READ_CHUNK = 1 << 20;

/** Directory entries looked at when a protected directory's files are compared by inode. */
const MAX_PROTECTED_ENTRIES = 4096;

/** What a file is, for a message ("a FIFO"), when it is not what was expected. */
export function fileKind(st: fs.Stats): string {
  return st.isFile() ? 'a regular file'
    : st.isDirectory() ? 'a directory'
    : st.isSymbolicLink() ? 'a symbolic link'
    : st.isFIFO() ? 'a FIFO'
    : st.isSocket() ? 'a socket'
    : st.isCharacterDevice() ? 'a character device'
    : st.isBlockDevice() ? 'a block device'
    : 'not a regular file';
}

function lstatOrNull(p: string, context: string): fs.Stats | null {
  try {
    return fs.lstatSync(p, { throwIfNoEntry: false }) ?? null;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOTDIR') throw new DumpError('IO', `${context}: ${path.dirname(p)} is not a directory`, { file: p });
    throw ioError(context, err);
  }
}

/**
 * `file` (made absolute against the working directory) with every symbolic
 * link resolved, component by component: the links of the part that exists,
 * a dangling link's target, and the rest appended as written. This is where
 * a later open or mkdir would land. More than MAX_SYMLINKS links (a loop)
 * fail with one line, as ELOOP does.
 */
export function resolvePath(file: string, context = file): string {
  const pending = path.resolve(file).split('/').filter((c) => c !== '');
  let resolved = '/';
  let links = 0;
  while (pending.length > 0) {
    const c = pending.shift()!;
    if (c === '.') continue;
    if (c === '..') { resolved = path.dirname(resolved); continue; }
    const next = path.join(resolved, c);
    // A missing component is kept as written; '..' may lead back to parts that exist.
    const st = lstatOrNull(next, context);
    if (st === null) {
      resolved = next;
      continue;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) {
        throw new DumpError('IO', `${context}: too many levels of symbolic links (more than ${MAX_SYMLINKS}, at ${next})`, { file: next });
      }
      let target: string;
      try {
        target = fs.readlinkSync(next);
      } catch (e) {
        throw ioError(context, e as NodeJS.ErrnoException);
      }
      if (target.startsWith('/')) resolved = '/';
      pending.unshift(...target.split('/').filter((x) => x !== ''));
      continue;
    }
    if (!st.isDirectory() && pending.some((x) => x !== '.' && x !== '..')) {
      throw new DumpError('IO', `${context}: ${next} is ${fileKind(st)}, not a directory`, { file: next });
    }
    resolved = next;
  }
  return resolved;
}

/** True when `p` is `dir` or lies under it (both resolved, absolute). */
export function isWithin(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/**
 * A path from a configuration file, inside the machine root: an absolute
 * value is taken relative to the root (lkcdutils' paths are the machine's
 * own). Refused when it contains '..' or, after every link is resolved,
 * lands outside the root. Returns the resolved path.
 */
export function resolveInRoot(rootDir: string, value: string, where: string): string {
  if (value === '') throw new UsageError(`${where} is empty`);
  if (value.includes('\0')) throw new UsageError(`${where} contains a NUL byte`);
  if (value.split('/').includes('..')) throw new UsageError(`${where} '${value}' leaves the machine root ('..' is not allowed)`);
  const root = resolvePath(rootDir, `machine root ${rootDir}`);
  const resolved = resolvePath(path.join(root, path.posix.normalize(`/${value}`)), `${where} '${value}'`);
  if (!isWithin(resolved, root)) {
    throw new UsageError(`${where} '${value}' leaves the machine root: it resolves to ${resolved}, outside ${root}`);
  }
  return resolved;
}

/**
 * A file the machine owns, or an input of the running command: a command
 * must not write it, and a device or dump path must not name it. A `tree`
 * protects everything under a directory.
 */
export interface ProtectedPath {
  path: string;
  /** Says what it is, after "is": "the machine's RAM image (lib/machine/ram)". */
  what: string;
  tree?: boolean;
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p, { throwIfNoEntry: false }) ?? null;
  } catch {
    return null; // a protected path we cannot even stat cannot be the target either
  }
}

/** The protected entry `target` (resolved) is, by path or by device and inode; null if none. */
export function protectedMatch(target: string, protect: readonly ProtectedPath[]): ProtectedPath | null {
  const resolved = (p: string): string => {
    // A protected path that cannot be resolved (a loop planted there) is still compared as written.
    try { return resolvePath(p); } catch { return path.resolve(p); }
  };
  for (const p of protect) {
    const at = resolved(p.path);
    if (p.tree ? isWithin(target, at) : target === at) return p;
  }
  // Another name for the same file (a hard link, a bind mount) is the same file.
  const st = statOrNull(target);
  if (!st || !st.isFile()) return null;
  const same = (file: string): boolean => {
    const s = statOrNull(file);
    return s !== null && s.dev === st.dev && s.ino === st.ino;
  };
  for (const p of protect) {
    if (!p.tree) {
      if (same(p.path)) return p;
      continue;
    }
    let names: string[];
    try { names = fs.readdirSync(p.path).slice(0, MAX_PROTECTED_ENTRIES); } catch { continue; }
    if (names.some((n) => same(path.join(p.path, n)))) return p;
  }
  return null;
}

/** Refuses a device or dump path that names a protected file: `role` says what it was to be. */
export function refuseProtected(resolved: string, protect: readonly ProtectedPath[], where: string, role: string): void {
  const hit = protectedMatch(resolved, protect);
  if (hit) throw new UsageError(`${where}: ${resolved} is ${hit.what}; it cannot be ${role}`, { file: resolved });
}

/** Refuses a path that exists and is a FIFO, socket or device (a block device is allowed where a device is meant). */
export function refuseSpecialFile(resolved: string, where: string, opts: { allowBlockDevice?: boolean } = {}): void {
  const st = statOrNull(resolved);
  if (!st || st.isFile() || st.isDirectory() || (opts.allowBlockDevice && st.isBlockDevice())) return;
  throw new DumpError('IO', `${where}: ${resolved} is ${fileKind(st)}, not a regular file`, { file: resolved });
}

/**
 * Reads a regular file of at most `maxBytes`, in bounded time: it is opened
 * with O_NONBLOCK (a FIFO does not wait for a writer) and checked with
 * fstat before any read; a FIFO, socket or device is refused, so is a file
 * over the limit, and the read stops at the limit even if the file grows.
 */
export function readRegularFile(file: string, maxBytes: number, what: string): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // open(2) of a socket fails with ENXIO: say what the file is.
    const st = err.code === 'ENXIO' ? statOrNull(file) : null;
    if (st) throw new DumpError('IO', `${what} ${file} is ${fileKind(st)}, not a regular file`, { file });
    throw ioError(`reading ${what}`, err);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new DumpError('IO', `${what} ${file} is ${fileKind(st)}, not a regular file`, { file });
    if (st.size > maxBytes) {
      throw new DumpError('USAGE', `${what} ${file} is ${st.size} bytes, more than the ${maxBytes} allowed`, { file });
    }
    // Read to the end, but never past the limit: a file that grows while it is read is refused too.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.alloc(Math.min(READ_CHUNK, maxBytes + 1 - total));
      const n = fs.readSync(fd, buf, 0, buf.length, total);
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
      if (total > maxBytes) throw new DumpError('USAGE', `${what} ${file} grew past the ${maxBytes} bytes allowed while it was read`, { file });
    }
    return Buffer.concat(chunks, total);
  } catch (e) {
    throw e instanceof DumpError ? e : ioError(`reading ${what}`, e as NodeJS.ErrnoException);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Checks where an output may go and returns it resolved (a link is followed
 * to the file it names, as a shell redirection does). Refused with one line:
 * a FIFO, socket, device or directory at that path (nothing is opened, so
 * nothing blocks); any protected file (an input of the command, or one the
 * machine owns), by path or by device and inode.
 */
export function checkOutputPath(file: string, protect: readonly ProtectedPath[]): string {
  if (file === '') throw new UsageError('the output path is empty');
  const target = resolvePath(file, `output ${file}`);
  const named = target === path.resolve(file) ? `output ${file}` : `output ${file} (${target})`;
  const st = lstatOrNull(target, named);
  if (st && !st.isFile()) throw new DumpError('IO', `${named} is ${fileKind(st)}; refusing to replace it`, { file: target });
  const hit = protectedMatch(target, protect);
  if (hit) throw new UsageError(`${named} is ${hit.what}; refusing to write over it`, { file: target });
  const dir = path.dirname(target);
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch (e) {
    throw ioError(`writing ${file}: output directory`, e as NodeJS.ErrnoException);
  }
  return target;
}

/** A fresh temporary name beside `target`, for a write that is renamed into place. */
export function temporaryBeside(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
}

/**
 * Writes an output file the way every command should: checked by
 * checkOutputPath, written under a temporary name in the same directory
 * with mode 0600, fsynced, renamed over the target, the directory fsynced.
 * A reader sees the old file or the whole new one; a failure leaves no
 * temporary behind. Returns the resolved path written.
 */
export function writeOutputFile(file: string, data: Uint8Array | string, protect: readonly ProtectedPath[]): string {
  const target = checkOutputPath(file, protect);
  const tmp = temporaryBeside(target);
  let created = false;
  try {
    const fd = fs.openSync(tmp, 'wx', 0o600);
    created = true;
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, target);
    created = false;
    fsyncDir(path.dirname(target));
  } catch (e) {
    if (created) fs.rmSync(tmp, { force: true });
    throw wrapError(`writing ${file}`, e);
  }
  return target;
}
