import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DumpError, ioError, UsageError } from '../codec/index.js';
import { ensureDir } from './files.js';
import { fileKind, isWithin, resolvePath, type ProtectedPath } from './paths.js';

/** Kernel pseudo-file systems: a machine root there would be read and written as kernel files. */
const PSEUDO_FS_DIRS = ['/proc', '/sys', '/dev'] as const;
/** statfs f_type of procfs and sysfs (include/uapi/linux/magic.h), wherever they are mounted. */
const PROC_SUPER_MAGIC = 0x9fa0;
const SYSFS_MAGIC = 0x62656572;

/** The checkout's own var/ directory: the default machine root. */
export function defaultRoot(): string {
  // This file is src/machine/root.ts (or dist/src/machine/root.js): climb to the package root.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return path.join(dir, 'var');
    dir = path.dirname(dir);
  }
  return path.resolve('var');
}

/**
 * --root wins, then LKCD_ROOT, then the checkout's var/. The result has
 * every symbolic link resolved. Refused with one line: a root that exists
 * and is not a directory, a link loop, and a root inside /proc, /sys or
 * /dev (or on a procfs or sysfs mounted elsewhere).
 */
export function resolveRoot(option?: string): string {
  const chosen = option ?? process.env.LKCD_ROOT ?? defaultRoot();
  if (chosen.trim() === '') throw new UsageError('machine root is an empty path');
  if (chosen.includes('\0')) throw new UsageError('machine root contains a NUL byte');
  const dir = resolvePath(chosen, `machine root ${chosen}`);
  const pseudo = PSEUDO_FS_DIRS.find((d) => isWithin(dir, d));
  if (pseudo) throw new UsageError(`machine root ${chosen} resolves to ${dir}, inside ${pseudo}: not a place for a machine`);
  let existing = dir;
  while (!fs.existsSync(existing)) existing = path.dirname(existing);
  let st: fs.Stats;
  let fsType: number;
  try {
    st = fs.statSync(existing);
    fsType = Number(fs.statfsSync(existing).type);
  } catch (e) {
    throw ioError(`machine root ${chosen}`, e as NodeJS.ErrnoException);
  }
  if (existing === dir && !st.isDirectory()) throw new DumpError('IO', `machine root ${chosen} is ${fileKind(st)}, not a directory`, { file: dir });
  if (fsType === PROC_SUPER_MAGIC || fsType === SYSFS_MAGIC) {
    throw new UsageError(`machine root ${chosen} resolves to ${dir}, on a ${fsType === PROC_SUPER_MAGIC ? 'proc' : 'sysfs'} file system: not a place for a machine`);
  }
  return dir;
}

/** Every path the simulated machine keeps under its root (DESIGN section 2). */
export class MachineRoot {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }
  get machineDir(): string { return path.join(this.dir, 'lib', 'machine'); }
  get ramPath(): string { return path.join(this.machineDir, 'ram'); }
  get statePath(): string { return path.join(this.machineDir, 'state.json'); }
  get bootDir(): string { return path.join(this.dir, 'boot'); }
  get devDir(): string { return path.join(this.dir, 'dev'); }
  get sysconfigPath(): string { return path.join(this.dir, 'etc', 'sysconfig', 'dump'); }
  get dumpDir(): string { return path.join(this.dir, 'log', 'dump'); }

  /**
   * Files the machine itself lives on: its RAM and CPU state, its kernel
   * images and maps, the dump configuration. No dump device, dump
   * directory or output may be one of them.
   */
  ownFiles(): ProtectedPath[] {
    return [
      { path: this.ramPath, what: "the machine's RAM image (lib/machine/ram)" },
      { path: this.statePath, what: "the machine's state (lib/machine/state.json)" },
      { path: this.machineDir, tree: true, what: "the machine's hardware state (lib/machine)" },
      { path: this.bootDir, tree: true, what: "the machine's kernel images and maps (boot)" },
      { path: this.sysconfigPath, what: 'the dump configuration (etc/sysconfig/dump)' },
    ];
  }

  /**
   * What a command's output must never replace: ownFiles, the machine's
   * devices (dev) and the default dump directory (log/dump), which a
   * command that does not read etc/sysconfig/dump still knows.
   */
  outputProtected(): ProtectedPath[] {
    return [
      ...this.ownFiles(),
      { path: this.devDir, tree: true, what: "the machine's devices (dev)" },
      { path: this.dumpDir, tree: true, what: 'the dump directory (log/dump)' },
    ];
  }

  /** Creates the directory skeleton, failing with one line if the root is not writable. */
  prepare(): void {
    if (fs.existsSync(this.dir) && !fs.statSync(this.dir).isDirectory()) {
      throw new UsageError(`machine root ${this.dir} is not a directory`);
    }
    ensureDir(this.dir, 0o755);
    try {
      fs.accessSync(this.dir, fs.constants.W_OK);
    } catch (e) {
      throw ioError(`machine root is not writable`, e as NodeJS.ErrnoException);
    }
    for (const d of [this.machineDir, this.bootDir, this.devDir, path.dirname(this.sysconfigPath)]) ensureDir(d);
  }
}
