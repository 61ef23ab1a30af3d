import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MachineRoot } from '../../src/machine/index.js';
import { closeSystem, powerOn, type PowerOnOptions, type RunningSystem } from '../../src/kernel/index.js';

/** A machine powered on in its own temporary root; `destroy` closes it and removes the root. */
export interface TempMachine {
  dir: string;
  sys: RunningSystem;
  destroy(): void;
}

export const MiB = 1n << 20n;

/** Makes a fresh temporary directory (removed with removeTempDir). */
export function makeTempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `lkcd-${prefix}-`));
}

export function removeTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * Powers on a machine in a fresh mkdtemp root. Call `destroy()` in afterAll:
 *
 *   let m: TempMachine;
 *   beforeAll(() => { m = powerOnTemp({ mem: 16n * MiB, profile: 'idle', seed: 1 }); });
 *   afterAll(() => m?.destroy());
 */
export function powerOnTemp(opts: PowerOnOptions, prefix = 'machine'): TempMachine {
  const dir = makeTempDir(prefix);
  let sys: RunningSystem;
  try {
    sys = powerOn(new MachineRoot(dir), opts);
  } catch (e) {
    removeTempDir(dir);
    throw e;
  }
  let closed = false;
  return {
    dir,
    sys,
    destroy() {
      if (!closed) {
        closed = true;
        closeSystem(sys);
      }
      removeTempDir(dir);
    },
  };
}
