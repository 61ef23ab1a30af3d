import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ioError, UsageError } from '../codec/index.js';
import { ensureDir } from './files.js';

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

/** --root wins, then LKCD_ROOT, then the checkout's var/. */
export function resolveRoot(option?: string): string {
  const chosen = option ?? process.env.LKCD_ROOT ?? defaultRoot();
  if (chosen.trim() === '') throw new UsageError('machine root is an empty path');
  return path.resolve(chosen);
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
