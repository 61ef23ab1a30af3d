import fs from 'node:fs';
import path from 'node:path';
import { DumpError, hex } from '../codec/index.js';
import type { MachineRoot } from '../machine/index.js';
import {
  BuddyAllocator, Kernel, kexecLoad, LOGLEVEL_INFO, LOGLEVEL_WARNING, MemMap, printk, readKernelImageFile,
} from '../kernel/index.js';
import { parseCrashdumpArg, pendingDump } from './crashdump_boot.js';
import { readBlock } from './memdev/block.js';

/**
 * The image a config block names (a path as the running kernel sees it),
 * on the machine: inside the root, symlinks resolved, never outside it;
 * null when it is not there.
 */
export function imageOnMachine(root: MachineRoot, inRoot: string): string | null {
  if (!inRoot.startsWith('/') || inRoot.split('/').includes('..')) return null;
  try {
    const top = fs.realpathSync(root.dir);
    const file = fs.realpathSync(path.join(root.dir, inRoot));
    return file.startsWith(`${top}${path.sep}`) && fs.statSync(file).isFile() ? file : null;
  } catch {
    return null;
  }
}

/**
 * Boot-time step of a kernel that holds a dump from the previous boot, as
 * LKCD's init scripts did: reload kexec with the image and crashdump= the
 * dump was armed with, so a second crash before the writeout reboots into
 * a kernel that finds the same dump. One log line says what was done; a
 * missing or unreadable image is logged, never fatal. Returns the line.
 */
export function reloadKexecForHeldDump(kernel: Kernel, root: MachineRoot): string | null {
  const pending = pendingDump(kernel);
  if (!pending) return null;
  const say = (line: string, level = LOGLEVEL_INFO): string => { printk(kernel, line, level); return line; };
  const block = readBlock(kernel.ram, pending.phys);
  if (block.kexec_image === '' || block.kexec_cmdline === '') {
    return say(`crashdump: no kexec image recorded with the dump at ${hex(pending.addr)}; a crash before the writeout will lose it`, LOGLEVEL_WARNING);
  }
  const arg = parseCrashdumpArg(block.kexec_cmdline);
  if (arg?.value !== pending.addr) {
    return say(`crashdump: the recorded kexec command line does not point at the dump at ${hex(pending.addr)}; not reloading kexec`, LOGLEVEL_WARNING);
  }
  const file = imageOnMachine(root, block.kexec_image);
  if (file === null) {
    return say(`crashdump: kexec image ${block.kexec_image} not found; a crash before the writeout will lose the dump at ${hex(pending.addr)}`, LOGLEVEL_WARNING);
  }
  try {
    const image = readKernelImageFile(file);
    const memmap = new MemMap(kernel);
    kexecLoad(kernel, new BuddyAllocator(kernel, memmap), memmap, image, block.kexec_cmdline);
  } catch (e) {
    if (!(e instanceof DumpError)) throw e;
    return say(`crashdump: reloading kexec image ${block.kexec_image} failed: ${e.message}; a crash before the writeout will lose the dump at ${hex(pending.addr)}`, LOGLEVEL_WARNING);
  }
  return say(`crashdump: reloaded kexec image ${block.kexec_image} --command-line="${block.kexec_cmdline}" to keep the dump at ${hex(pending.addr)} across a crash`);
}
