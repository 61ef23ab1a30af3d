/**
 * kdumpctl's commands (kdump-utils kdumpctl and kdump-lib.sh) as
 * functions: start, stop, status, estimate, in kdump mode (kexec -p) or
 * fadump mode (/sys/kernel/fadump/registered). The kdumpctl command and
 * `npm start -- --design kdump|fadump` call them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../src/codec/index.js';
import { MachineRoot, PlatformFirmware, writeFileAtomic } from '../src/machine/index.js';
import {
  BuddyAllocator, buildFileNames, closeSystem, iomemResources, isKdumpKernel, kexecCrashLoaded, kexecCrashSize, kexecLoadCrash,
  kexecUnloadCrash, MemMap, openSystem, readKernelImageFile, Sysfs, type RunningSystem,
} from '../src/kernel/index.js';
import { planPanicLoad } from './load_panic.js';
import { KDUMP_CONF, KDUMP_SYSCONFIG, loadKdumpConf, loadKdumpSysconfig, prepareCmdline } from './kdump_conf.js';
import { kdumpInitramfs } from './initramfs.js';

/** The boot CPU's APIC id (the simulated machine's one CPU is 0). */
const BOOT_CPU_APICID = 0;
/** kdump-utils' x86_64 baseline (kdump_get_arch_recommend_crashkernel). */
const X86_64_RECOMMENDED = '2G-64G:256M,64G-:512M';
/** "A pre-estimated value for userspace usage and kernel runtime allocation" (do_estimate). */
const RUNTIME_RESERVATION = 16n << 20n;
const MiB = 1n << 20n;

/** kdumpctl status: not operational. */
export const EXIT_NOT_OPERATIONAL = 3;

function procCmdline(sys: RunningSystem): string {
  const raw = sys.kernel.readBytes('boot_command_line');
  return raw.subarray(0, raw.indexOf(0)).toString('latin1');
}

function initrdPath(root: MachineRoot, release: string): string {
  return path.join(root.bootDir, `initramfs-${release}kdump.img`);
}

/** Rebuilds the kdump initramfs when its content would change (mkdumprd); returns its path and bytes. */
function ensureInitrd(root: MachineRoot, release: string): { file: string; bytes: Uint8Array } {
  loadKdumpConf(root);
  const conf = fs.readFileSync(path.join(root.dir, KDUMP_CONF), 'utf8');
  const sysconfig = (loadKdumpSysconfig(root), fs.readFileSync(path.join(root.dir, KDUMP_SYSCONFIG), 'utf8'));
  const bytes = kdumpInitramfs(conf, sysconfig);
  const file = initrdPath(root, release);
  const old = fs.existsSync(file) ? fs.readFileSync(file) : null;
  if (!old || !old.equals(Buffer.from(bytes))) writeFileAtomic(file, bytes, 0o600);
  return { file, bytes };
}

/** kdump-lib.sh's sysfs nodes of fadump mode. */
const FADUMP_ENABLED_SYS_NODE = 'kernel/fadump/enabled';
const FADUMP_REGISTER_SYS_NODE = 'kernel/fadump/registered';
const FADUMP_MEM_RESERVED_SYS_NODE = 'kernel/fadump/mem_reserved';

export function sysfsOf(sys: RunningSystem): Sysfs {
  return new Sysfs(sys.kernel, undefined, { firmware: new PlatformFirmware(sys.root, sys.ram) });
}

/** is_fadump_capable(): /sys/kernel/fadump/enabled exists and reads 1 (the dump mode is then fadump). */
export function isFadumpCapable(sysfs: Sysfs): boolean {
  return sysfs.exists(FADUMP_ENABLED_SYS_NODE) && sysfs.read(FADUMP_ENABLED_SYS_NODE).toString('latin1').trim() === '1';
}

/** is_kernel_loaded "fadump": /sys/kernel/fadump/registered reads 1. */
export function fadumpRegistered(sysfs: Sysfs): boolean {
  return sysfs.exists(FADUMP_REGISTER_SYS_NODE) && sysfs.read(FADUMP_REGISTER_SYS_NODE).toString('latin1').trim() === '1';
}

/**
 * `echo VALUE > /sys/kernel/fadump/registered` as kdumpctl runs it: the
 * write's own failure is not checked (a second `echo 1` fails with EEXIST
 * and is fine); the read-back decides. Returns the write's error, if any.
 */
function echoRegistered(sysfs: Sysfs, value: string): string | null {
  try {
    sysfs.write(FADUMP_REGISTER_SYS_NODE, value);
    return null;
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
}

/** start_fadump(): echo 1 > registered, then the read-back must say 1. */
function startFadump(sys: RunningSystem, sysfs: Sysfs, say: (l: string) => void): void {
  const err = echoRegistered(sysfs, '1');
  sys.ram.flush();
  if (!fadumpRegistered(sysfs)) throw new UsageError(`start: fadump: failed to register${err ? `: ${err}` : ''}`);
  say('fadump: registered successfully');
  say('Starting kdump: [OK]');
}

export function kdumpctlStart(root: MachineRoot, say: (l: string) => void): void {
  const sys = openSystem(root);
  try {
    const kernel = sys.kernel;
    const sysfs = sysfsOf(sys);
    if (isFadumpCapable(sysfs)) { startFadump(sys, sysfs, say); return; }
    if (isKdumpKernel(kernel)) throw new UsageError('start: this is a capture kernel (run kdumpctl save here)');
    if (kexecCrashSize(kernel) === 0n) throw new UsageError('start: no memory reserved for crash kernel: boot with crashkernel=SIZE (e.g. machine power-on --cmdline "... crashkernel=32M")');
    if (kexecCrashLoaded(kernel)) { say('Kdump already running: [WARNING]'); return; }
    const conf = loadKdumpConf(root);
    const sc = loadKdumpSysconfig(root);
    const release = kernel.release;
    const image = readKernelImageFile(buildFileNames(root.bootDir, release).vmlinuz);
    const initrd = ensureInitrd(root, release);
    const cmdline = prepareCmdline(procCmdline(sys), sc, BOOT_CPU_APICID);
    const plan = planPanicLoad(kernel, image, cmdline, initrd.bytes);
    const memmap = new MemMap(kernel);
    kexecLoadCrash(kernel, new BuddyAllocator(kernel, memmap), memmap, plan.spec);
    sys.ram.flush();
    say(`kexec -p --command-line="${cmdline}" --initrd=${path.relative(root.dir, initrd.file)} boot/vmlinuz-${release}`);
    say('kexec: loaded kdump kernel');
    say(`Starting kdump: [OK] (dumps go to ${conf.path}, core collector: ${conf.coreCollector.join(' ')})`);
  } finally {
    closeSystem(sys);
  }
}

export function kdumpctlStop(root: MachineRoot, say: (l: string) => void): void {
  const sys = openSystem(root);
  try {
    const sysfs = sysfsOf(sys);
    if (isFadumpCapable(sysfs)) {
      // stop_fadump(): echo 0 > registered, then the read-back must say 0.
      const err = echoRegistered(sysfs, '0');
      sys.ram.flush();
      if (fadumpRegistered(sysfs)) throw new UsageError(`stop: fadump: failed to unregister${err ? `: ${err}` : ''}`);
      say('fadump: unregistered successfully');
      say('Stopping kdump: [OK]');
      return;
    }
    const memmap = new MemMap(sys.kernel);
    const had = kexecUnloadCrash(sys.kernel, new BuddyAllocator(sys.kernel, memmap));
    sys.ram.flush();
    say(had ? 'kexec: unloaded kdump kernel' : 'kexec: no kdump kernel was loaded');
    say('Stopping kdump: [OK]');
  } finally {
    closeSystem(sys);
  }
}

/** get_recommend_size(): the size a "start-end:size,..." list gives a machine of `memGb` GiB. */
function recommendSize(memGb: bigint, list: string): bigint {
  for (const range of list.split(',')) {
    const m = /^(\d+)([GT]?)-(\d*)([GT]?):(\d+)([MG])$/.exec(range);
    if (!m) continue;
    const unit = (u: string): bigint => (u === 'T' ? 1024n : 1n);
    const startGb = BigInt(m[1]) * unit(m[2]);
    const endGb = m[3] === '' ? 104857600n : BigInt(m[3]) * unit(m[4]);
    if (memGb >= startGb && memGb < endGb) return BigInt(m[5]) * (m[6] === 'G' ? 1024n * MiB : MiB);
  }
  return 0n;
}

export function kdumpctlEstimate(root: MachineRoot, say: (l: string) => void): void {
  const sys = openSystem(root, { readOnly: true });
  try {
    const kernel = sys.kernel;
    // get_reserved_mem_size(): fadump's mem_reserved in fadump mode, else kexec_crash_size.
    const sysfs = sysfsOf(sys);
    const reserved = isFadumpCapable(sysfs) ? BigInt(sysfs.read(FADUMP_MEM_RESERVED_SYS_NODE).toString('latin1').trim()) : kexecCrashSize(kernel);
    const image = readKernelImageFile(buildFileNames(root.bootDir, kernel.release).vmlinuz);
    // get_vmlinux_size(): the sum of the PT_LOADs' MemSiz.
    const kernelSize = image.segments.reduce((n, s) => n + s.memsz, 0n);
    const initrd = ensureInitrd(root, kernel.release);
    const initrdSize = BigInt(fs.statSync(initrd.file).size);
    // get_system_size(): System RAM of /proc/iomem in MiB, rounded up to 128M, in GiB.
    const ramBytes = iomemResources(kernel).filter((r) => r.name === 'System RAM').reduce((n, r) => n + r.end - r.start + 1n, 0n);
    const memGb = (((ramBytes / MiB) + 127n) / 128n * 128n) / 1024n;
    const baseline = recommendSize(memGb, X86_64_RECOMMENDED);
    const estimated = kernelSize + initrdSize * 3n + RUNTIME_RESERVATION;
    const recommended = baseline > estimated ? baseline : estimated;
    say(`Reserved crashkernel:    ${reserved / MiB}M`);
    say(`Recommended crashkernel: ${recommended / MiB}M`);
    say('');
    say(`Kernel image size:   ${kernelSize / MiB}M`);
    say('Kernel modules size: 0M');
    say(`Initramfs size:      ${initrdSize / MiB}M`);
    say(`Runtime reservation: ${RUNTIME_RESERVATION / MiB}M`);
    say('Large modules: <none>');
    if (reserved < recommended) say(`WARNING: Current crashkernel size is lower than recommended size ${recommended / MiB}M.`);
  } finally {
    closeSystem(sys);
  }
}

/** is_kernel_loaded "$DEFAULT_DUMP_MODE": fadump's registered in fadump mode, else kexec_crash_loaded. */
export function kdumpctlOperational(sys: RunningSystem): boolean {
  const sysfs = sysfsOf(sys);
  return isFadumpCapable(sysfs) ? fadumpRegistered(sysfs) : kexecCrashLoaded(sys.kernel) !== null;
}
