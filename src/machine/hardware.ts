import fs from 'node:fs';
import path from 'node:path';
import { DumpError, InternalError, ioError } from '../codec/index.js';
import { ensureDir, writeFileAtomic } from './files.js';
import { HARDWARE_FILE_MAX, journalHardwareFile, journalPathOf, ownsJournal, recoverAbandonedStep, validHardwareName } from './journal.js';
import type { MachineRoot } from './root.js';

/**
 * Hardware state kept outside RAM, as files under lib/machine/ (state.json;
 * device registers, RTC, firmware registrations as they come). A file
 * written while this process runs a step of the machine (its RAM is open
 * for writing) changes with that step: its original goes into the step's
 * undo journal first, so a kill before the step commits puts it back with
 * RAM. Written outside a step, the replacement is atomic on its own.
 */
export function hardwarePath(root: MachineRoot, name: string): string {
  if (!validHardwareName(name)) throw new InternalError(`'${name}' is not a hardware file name under lib/machine/`);
  return path.join(root.machineDir, name);
}

/** The content of a hardware file, or null when it does not exist. */
export function readHardwareFile(root: MachineRoot, name: string): Buffer | null {
  const file = hardwarePath(root, name);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError('reading hardware state', e as NodeJS.ErrnoException);
  }
  try {
    const st = fs.fstatSync(fd);
    // Bounded: a FIFO or a huge file where hardware state belongs is refused, never read forever.
    if (!st.isFile() || st.size > HARDWARE_FILE_MAX) {
      throw new DumpError('CORRUPT', `${file}: not a hardware state file (${st.isFile() ? `${st.size} bytes` : 'not a regular file'})`, { file });
    }
    return fs.readFileSync(fd);
  } catch (e) {
    if (e instanceof DumpError) throw e;
    throw ioError(`reading ${file}`, e as NodeJS.ErrnoException);
  } finally {
    fs.closeSync(fd);
  }
}

/** Keeps the original of a hardware file in the running step's journal, if this process runs one. */
function journalOriginal(root: MachineRoot, name: string): void {
  const journal = journalPathOf(root.ramPath);
  if (!fs.existsSync(journal)) return;
  if (!ownsJournal(journal)) {
    // A step some dead process left: undo it before changing anything (a live one is a busy machine).
    recoverAbandonedStep(root.ramPath);
    return;
  }
  journalHardwareFile(journal, name, readHardwareFile(root, name));
}

/** Replaces a hardware file (0600), within the running step if there is one. */
export function writeHardwareFile(root: MachineRoot, name: string, data: string | Uint8Array): void {
  const file = hardwarePath(root, name);
  if (Buffer.byteLength(data) > HARDWARE_FILE_MAX) throw new InternalError(`hardware file ${name} of ${Buffer.byteLength(data)} bytes exceeds ${HARDWARE_FILE_MAX}`);
  ensureDir(path.dirname(file));
  journalOriginal(root, name);
  writeFileAtomic(file, data, 0o600);
}

/** Removes a hardware file (power-off clearing a device, say), within the running step if there is one. */
export function removeHardwareFile(root: MachineRoot, name: string): void {
  const file = hardwarePath(root, name);
  if (!fs.existsSync(file)) return;
  journalOriginal(root, name);
  try {
    fs.unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`removing ${file}`, e as NodeJS.ErrnoException);
  }
}
