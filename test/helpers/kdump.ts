/**
 * Shared steps of the kdump tests: a machine booted with crashkernel=, the
 * capture kernel loaded as `kexec -p` loads it, RAM captured at the crash,
 * and the real readers' view of a dump (test/tools/read_phys.py).
 */
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { PAGE_SIZE, PAGE_SIZE_N } from '../../src/machine/index.js';
import {
  BuddyAllocator, buildFileNames, crashkernelRegion, iomemResources, kexecLoadCrash, MemMap, readKernelImageFile,
  type PhysRange, type RunningSystem,
} from '../../src/kernel/index.js';
import { planPanicLoad } from '../../kexec/load_panic.js';
import { REPO } from './cli.js';
import { powerOnTemp, type TempMachine } from './machine.js';

export const KDUMP_CMDLINE = 'console=ttyS0,115200 irqpoll nr_cpus=1 reset_devices';

/** Powers on a machine whose command line reserves `crashkernel`. */
export function kdumpMachine(opts: { mem: bigint; crashkernel: string; profile?: string; seed?: number }, prefix = 'kdump'): TempMachine {
  return powerOnTemp({
    mem: opts.mem, profile: opts.profile ?? 'database', seed: opts.seed ?? 7,
    cmdline: `BOOT_IMAGE=/boot/vmlinuz root=/dev/vda1 ro console=ttyS0,115200 panic=5 crashkernel=${opts.crashkernel}`,
  }, prefix);
}

/** kexec -p of the running release with `cmdline` (and an initrd), as the kexec CLI does it. */
export function loadPanicKernel(sys: RunningSystem, cmdline = KDUMP_CMDLINE, initrd: Uint8Array | null = null): ReturnType<typeof planPanicLoad> {
  const image = readKernelImageFile(buildFileNames(sys.root.bootDir, sys.kernel.release).vmlinuz);
  const plan = planPanicLoad(sys.kernel, image, cmdline, initrd);
  const memmap = new MemMap(sys.kernel);
  kexecLoadCrash(sys.kernel, new BuddyAllocator(sys.kernel, memmap), memmap, plan.spec);
  sys.ram.flush();
  return plan;
}

export function region(sys: RunningSystem): PhysRange {
  const r = crashkernelRegion(sys.kernel);
  expect(r).not.toBeNull();
  return r!;
}

/** System RAM of /proc/iomem as byte ranges [start, end), minus `minus`. */
export function systemRamOutside(sys: RunningSystem, minus: PhysRange): PhysRange[] {
  const out: PhysRange[] = [];
  for (const r of iomemResources(sys.kernel)) {
    if (r.name !== 'System RAM') continue;
    const s = r.start;
    const e = r.end + 1n;
    if (minus.end <= s || minus.start >= e) { out.push({ start: s, end: e }); continue; }
    if (s < minus.start) out.push({ start: s, end: minus.start });
    if (minus.end < e) out.push({ start: minus.end, end: e });
  }
  return out;
}

/** Page-sized pieces (the last of a range may be partial) of byte ranges: [addr, len]. */
export function pieces(ranges: readonly PhysRange[]): Array<[bigint, number]> {
  const out: Array<[bigint, number]> = [];
  for (const r of ranges) {
    for (let a = r.start; a < r.end;) {
      const next = (a / PAGE_SIZE_N + 1n) * PAGE_SIZE_N;
      const end = next < r.end ? next : r.end;
      out.push([a, Number(end - a)]);
      a = end;
    }
  }
  return out;
}

export function sha1(b: Uint8Array): string {
  return crypto.createHash('sha1').update(b).digest('hex');
}

/** sha1 of each piece, read from RAM now. */
export function ramHashes(sys: RunningSystem, p: ReadonlyArray<[bigint, number]>): string[] {
  return p.map(([a, n]) => sha1(sys.ram.read(a, n)));
}

/** What a real reader (kdumpfile or drgn) reads for each piece of a dump: sha1, or NODATA. */
export function readerHashes(tool: 'kdumpfile' | 'drgn', dump: string, p: ReadonlyArray<[bigint, number]>, dir: string): string[] {
  const list = path.join(dir, `ranges-${tool}-${process.pid}.txt`);
  fs.writeFileSync(list, p.map(([a, n]) => `${a.toString(16)} ${n}`).join('\n') + '\n');
  const r = spawnSync('timeout', ['600', '/usr/bin/python3', path.join(REPO, 'test', 'tools', 'read_phys.py'), tool, dump, list], { encoding: 'utf8', maxBuffer: 256 << 20 });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.trim().split('\n');
}

export const PAGE = PAGE_SIZE;
