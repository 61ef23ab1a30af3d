/**
 * The boot loader's default entry (a Boot Loader Specification entry in
 * spirit): which kernel the firmware boots and with which command line.
 * `machine power-on` writes it; a firmware reboot (kdump's final action)
 * reads it, so the normal kernel comes back with its crashkernel=.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CorruptDumpError, ioError } from '../codec/index.js';
import { writeFileAtomic, type MachineRoot } from '../machine/index.js';

export interface LoaderEntry {
  /** The image, as a path inside the machine root (/boot/vmlinuz-<release>). */
  linux: string;
  options: string;
}

export function loaderEntryPath(root: MachineRoot): string {
  return path.join(root.bootDir, 'loader.conf');
}

export function writeLoaderEntry(root: MachineRoot, e: LoaderEntry): void {
  writeFileAtomic(loaderEntryPath(root), `# The default boot entry (written by machine power-on)\nlinux ${e.linux}\noptions ${e.options}\n`, 0o644);
}

/** The default entry, or null when the machine was never powered on with one. */
export function readLoaderEntry(root: MachineRoot): LoaderEntry | null {
  const file = loaderEntryPath(root);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError('reading the boot loader entry', e as NodeJS.ErrnoException);
  }
  let linux: string | null = null;
  let options = '';
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(linux|options)\s+(.*)$/.exec(line);
    if (!m) throw new CorruptDumpError(`${file}:${i + 1}: cannot parse '${line}' (expected 'linux PATH' or 'options CMDLINE')`, { file });
    if (m[1] === 'linux') linux = m[2];
    else options = m[2];
  }
  if (!linux) throw new CorruptDumpError(`${file}: no 'linux' line`, { file });
  return { linux, options };
}
