import fs from 'node:fs';
import path from 'node:path';
import { DumpError } from '../src/codec/index.js';
import { isWithin, resolveInRoot, type MachineRoot } from '../src/machine/index.js';

/**
 * A file named on kexec's command line, as the running kernel sees it:
 * `/boot/vmlinuz-...` is ROOT/boot/vmlinuz-... (as KEXEC_IMAGE in
 * etc/sysconfig/dump is). A path already inside the machine root, or a
 * file on this host that the machine has no file at (an image built
 * elsewhere), is taken as it is. Nothing found: one line naming both places.
 */
export function machineFile(root: MachineRoot, given: string, what: string): string {
  if (path.isAbsolute(given) && isWithin(path.resolve(given), root.dir)) return given;
  let inMachine: string | null = null;
  try {
    inMachine = resolveInRoot(root.dir, given, what);
  } catch {
    inMachine = null; // '..' or a link out of the root: not a path inside the machine
  }
  if (inMachine !== null && fs.existsSync(inMachine)) return inMachine;
  if (fs.existsSync(given) || fs.lstatSync(given, { throwIfNoEntry: false })) return given;
  throw new DumpError('NOINPUT', `${what} ${given}: no such file in the machine (${inMachine ?? `outside ${root.dir}`}) nor on this host`, { file: given });
}
