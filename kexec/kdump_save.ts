/**
 * `kdumpctl save`: what the kdump initramfs does in the capture kernel
 * (dracut/99kdumpbase/kdump.sh dump_fs of kdump-utils): in
 * <path>/127.0.0.1-<date>/, vmcore-dmesg.txt first (by the real
 * vmcore-dmesg), then the core collector writes vmcore-incomplete from
 * /proc/vmcore, which is synced and renamed to vmcore only when the
 * collector succeeded; the device dumps of /sys/kernel/crashdd are copied to
 * crashdd/ beside it (what the crashdd patches' script added to
 * kdump-lib-initramfs.sh); then final_action, or failure_action when it failed.
 * /proc/vmcore is given to the real tools as a file, <root>/proc/vmcore,
 * for as long as the save runs.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DumpError, UsageError, ioError } from '../src/codec/index.js';
import { ensureDir, fsyncDir } from '../src/machine/index.js';
import {
  captureDesign, closeSystem, firmwareReboot, isKdumpKernel, kernelWallClock, powerOff, procVmcore, Sysfs, type CaptureDesign, type RunningSystem,
} from '../src/kernel/index.js';
import { copyProcVmcore } from '../src/dump/index.js';
import type { KdumpAction, KdumpConf } from './kdump_conf.js';
import { indexCapturedVmcore } from '../lkcd/add_dump.js';

/** kdump-lib-initramfs.sh: HOST_IP is 127.0.0.1 for a local dump target. */
export const KDUMP_LOCAL_HOST = '127.0.0.1';
/** How long the core collector and vmcore-dmesg may run. */
export const KDUMP_COLLECTOR_TIMEOUT_MS = 3600_000;
export const KDUMP_DMESG_TIMEOUT_MS = 600_000;

/** DATEDIR=$(date +%Y-%m-%d-%T), in UTC. */
export function kdumpDateDir(epochSeconds: bigint): string {
  const d = new Date(Number(epochSeconds) * 1000);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}-${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
}

function findExecutable(name: string): string | null {
  if (name.includes('/')) return fs.existsSync(name) ? name : null;
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin']) {
    if (dir && fs.existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  return null;
}

function fsyncFile(file: string): void {
  const fd = fs.openSync(file, 'r');
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

export interface SaveResult {
  /** The design whose capture boot this is (the dump is indexed under it). */
  design: CaptureDesign;
  dir: string;
  /** The directory as the machine sees it (<path>/127.0.0.1-<date>/). */
  shown: string;
  saved: boolean;
  /** The core collector's exit status (null when it did not run). */
  exitcode: number | null;
  action: KdumpAction;
  /** The machine after the action: the rebooted kernel, the capture kernel (shell), or null (powered off). */
  system: RunningSystem | null;
}

/**
 * Indexes the saved vmcore beside the LKCD dumps (lkcd list, show, read,
 * dmesg, verify, export). The vmcore is saved whatever happens here: a
 * failure to index it is said in one line, and lkcd import can add it later.
 */
function indexVmcore(sys: RunningSystem, design: CaptureDesign, vmcore: string, say: (l: string) => void): void {
  try {
    const r = indexCapturedVmcore(sys.root, design, vmcore);
    if (r.already) say(`kdumpctl save: ${vmcore} is already dump ${r.n} in the index`);
    for (const l of r.lines) say(l);
    if (r.degraded) say(`kdumpctl save: ${r.degraded.message}`);
  } catch (e) {
    if (!(e instanceof DumpError) || e.code === 'INTERNAL') throw e;
    say(`kdumpctl save: the vmcore is saved but not indexed: ${e.message}`);
  }
}

/** Runs the final or failure action. */
function act(sys: RunningSystem, action: KdumpAction, say: (l: string) => void): RunningSystem | null {
  switch (action) {
    case 'reboot': {
      const next = firmwareReboot(sys);
      say(`reboot: ${next.kernel.release} booted from the default boot entry`);
      return next;
    }
    case 'halt':
    case 'poweroff':
      closeSystem(sys);
      powerOff(sys.root);
      say(`${action}: the machine is powered off`);
      return null;
    case 'shell':
      say('shell: the capture kernel keeps running (machine proc vmcore -o FILE to inspect it, machine reset to leave)');
      return sys;
  }
}

/**
 * Copies /sys/kernel/crashdd/<driver>/<dump> to <dir>/crashdd/<driver>/<dump>:
 * each file 0600, written aside, fsynced and renamed; directories 0700.
 * Returns how many files were copied (0 when the kernel has none).
 */
export function saveCrashdd(sys: RunningSystem, dir: string): number {
  const sysfs = new Sysfs(sys.kernel);
  if (!sysfs.exists(CRASHDD_DIR)) return 0;
  let n = 0;
  for (const drv of sysfs.list(CRASHDD_DIR)) {
    if (drv.kind !== 'dir') continue;
    const target = path.join(dir, 'crashdd', drv.name);
    ensureDir(target, 0o700);
    for (const f of sysfs.list(`${CRASHDD_DIR}/${drv.name}`)) {
      if (f.kind !== 'file') continue;
      const file = path.join(target, f.name);
      const tmp = path.join(target, `.${f.name}.tmp-${process.pid}`);
      try {
        const fd = fs.openSync(tmp, 'w', 0o600);
        try {
          fs.writeFileSync(fd, f.read());
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
        fs.renameSync(tmp, file);
      } catch (e) {
        fs.rmSync(tmp, { force: true });
        throw e;
      }
      n++;
    }
    fsyncDir(target);
  }
  fsyncDir(path.join(dir, 'crashdd'));
  return n;
}

/** The crashdd tree in the capture kernel's sysfs. */
const CRASHDD_DIR = 'kernel/crashdd';

/**
 * Saves the crash dump from a capture kernel, then runs final_action, or
 * failure_action when the core collector failed (saved is then false).
 */
export function kdumpSave(sys: RunningSystem, conf: KdumpConf, say: (l: string) => void): SaveResult {
  const kernel = sys.kernel;
  if (!isKdumpKernel(kernel)) throw new UsageError('not running in a capture kernel (the running kernel has no elfcorehdr=): load one with kdumpctl start, then crash the machine');
  if (!procVmcore(kernel)) throw new DumpError('NOINPUT', '/proc/vmcore is not available: the capture kernel could not build it (see machine dmesg)');
  // kdump.sh runs the same way in a fadump capture boot (the dracut fadump module checks rtas/ibm,kernel-dump).
  const design = captureDesign(kernel) ?? 'kdump';
  const dir = path.join(conf.dir, `${KDUMP_LOCAL_HOST}-${kdumpDateDir(kernelWallClock(kernel).sec)}`);
  const shown = path.posix.join(conf.path, path.basename(dir)) + '/';
  if (fs.existsSync(path.join(dir, 'vmcore'))) throw new DumpError('USAGE', `${shown}vmcore already exists: this crash was saved`);
  ensureDir(dir, 0o700);
  say(`kdump: dump design ${design}${design === 'fadump' ? ': /proc/vmcore reads boot memory from the copy the firmware made' : ''}`);
  say(`kdump: saving to ${shown}`);
  const procDir = path.join(sys.root.dir, 'proc');
  ensureDir(procDir, 0o700);
  const procFile = path.join(procDir, 'vmcore');
  copyProcVmcore(kernel, procFile);
  let saved = false;
  let exitcode: number | null = null;
  try {
    // save_vmcore_dmesg_fs()
    say(`kdump: saving vmcore-dmesg.txt to ${shown}`);
    const dmesg = findExecutable('vmcore-dmesg');
    const partial = path.join(dir, 'vmcore-dmesg-incomplete.txt');
    let ok = false;
    if (dmesg) {
      const fd = fs.openSync(partial, 'w', 0o600);
      try {
        const r = spawnSync(dmesg, [procFile], { stdio: ['ignore', fd, 'pipe'], timeout: KDUMP_DMESG_TIMEOUT_MS });
        fs.fsyncSync(fd);
        ok = r.status === 0;
      } finally {
        fs.closeSync(fd);
      }
    }
    if (ok) {
      fs.renameSync(partial, path.join(dir, 'vmcore-dmesg.txt'));
      fs.chmodSync(path.join(dir, 'vmcore-dmesg.txt'), 0o600);
      fsyncDir(dir);
      say('kdump: saving vmcore-dmesg.txt complete');
    } else {
      say(`kdump: saving vmcore-dmesg.txt failed${dmesg ? '' : ' (vmcore-dmesg is not installed)'}`);
    }
    // dump_fs(): $CORE_COLLECTOR /proc/vmcore <dir>/vmcore-incomplete
    say('kdump: saving vmcore');
    const incomplete = path.join(dir, 'vmcore-incomplete');
    fs.rmSync(incomplete, { force: true });
    const [cmd, ...args] = conf.coreCollector;
    const exe = findExecutable(cmd);
    if (exe) {
      const r = spawnSync(exe, [...args, procFile, incomplete], { encoding: 'latin1', timeout: KDUMP_COLLECTOR_TIMEOUT_MS, maxBuffer: 64 << 20 });
      for (const l of `${r.stdout ?? ''}${r.stderr ?? ''}`.split(/[\r\n]+/)) if (l.trim() !== '') say(`  ${l.trimEnd()}`);
      exitcode = r.status ?? 124;
    } else {
      say(`kdump: core_collector '${cmd}' is not installed`);
      exitcode = 127;
    }
    if (exitcode === 0 && fs.existsSync(incomplete)) {
      fsyncFile(incomplete);
      fs.chmodSync(incomplete, 0o600);
      fs.renameSync(incomplete, path.join(dir, 'vmcore'));
      fsyncDir(dir);
      saved = true;
      say('kdump: saving vmcore complete');
      indexVmcore(sys, design, path.join(dir, 'vmcore'), say);
    } else {
      say(`kdump: saving vmcore failed, exitcode:${exitcode}`);
    }
    // The crashdd patches' script: the device dumps under /sys/kernel/crashdd go beside the vmcore.
    const copied = saveCrashdd(sys, dir);
    if (copied > 0) say(`kdump: saving ${copied} device dump${copied === 1 ? '' : 's'} from /sys/kernel/crashdd to ${shown}crashdd/ complete`);
  } catch (e) {
    throw e instanceof DumpError ? e : ioError(`saving the dump in ${shown}`, e as NodeJS.ErrnoException);
  } finally {
    fs.rmSync(procFile, { force: true });
  }
  const action = saved ? conf.finalAction : conf.failureAction;
  say(`kdump: executing ${saved ? 'final' : 'failure'} action ${action}`);
  const system = act(sys, action, say);
  return { design, dir, shown, saved, action, system, exitcode };
}
