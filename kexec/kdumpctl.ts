#!/usr/bin/env node
/**
 * kdumpctl (kdump-utils) for the simulated machine: start / stop / status /
 * restart load and unload the capture kernel with kexec -p, estimate
 * prints what kdump-utils' estimate prints, save runs in the capture
 * kernel what its initramfs runs (kdump.sh).
 */
import '../src/cli/heap.js'; // first: bounds V8's young generation (see heap.ts)
import fs from 'node:fs';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { DegradedResult, UsageError } from '../src/codec/index.js';
import { MachineRoot, resolveRoot, writeFileAtomic } from '../src/machine/index.js';
import {
  BuddyAllocator, buildFileNames, closeSystem, iomemResources, isKdumpKernel, kexecCrashLoaded, kexecCrashSize, kexecLoadCrash,
  kexecUnloadCrash, MemMap, openSystem, readKernelImageFile, type RunningSystem,
} from '../src/kernel/index.js';
import { runCli } from '../src/cli/run.js';
import { planPanicLoad } from './load_panic.js';
import { KDUMP_CONF, KDUMP_SYSCONFIG, loadKdumpConf, loadKdumpSysconfig, prepareCmdline } from './kdump_conf.js';
import { kdumpInitramfs } from './initramfs.js';
import { kdumpSave } from './kdump_save.js';

/** The boot CPU's APIC id (the simulated machine's one CPU is 0). */
const BOOT_CPU_APICID = 0;
/** kdump-utils' x86_64 baseline (kdump_get_arch_recommend_crashkernel). */
const X86_64_RECOMMENDED = '2G-64G:256M,64G-:512M';
/** "A pre-estimated value for userspace usage and kernel runtime allocation" (do_estimate). */
const RUNTIME_RESERVATION = 16n << 20n;
const MiB = 1n << 20n;

const EXIT_NOT_OPERATIONAL = 3;

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

function start(root: MachineRoot, say: (l: string) => void): void {
  const sys = openSystem(root);
  try {
    const kernel = sys.kernel;
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

function stop(root: MachineRoot, say: (l: string) => void): void {
  const sys = openSystem(root);
  try {
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

function estimate(root: MachineRoot, say: (l: string) => void): void {
  const sys = openSystem(root, { readOnly: true });
  try {
    const kernel = sys.kernel;
    const reserved = kexecCrashSize(kernel);
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

await runCli('kdumpctl', async () => {
  const out = (l: string): void => { process.stdout.write(`${l}\n`); };
  let status = 0;
  await yargs(hideBin(process.argv))
    .scriptName('kdumpctl')
    .usage('$0 <command> [options]\n\nkdump-utils\' kdumpctl for the simulated machine: load the capture kernel into the crashkernel region, and save /proc/vmcore with the real makedumpfile after a crash. Configuration: etc/kdump.conf and etc/sysconfig/kdump under the machine root (written with the defaults on first use).')
    .option('root', { type: 'string', describe: 'machine root directory (default: $LKCD_ROOT, else var/ of the checkout)' })
    .option('debug', { type: 'boolean', describe: 'print stack traces on errors' })
    .command('start', 'load the capture kernel (kexec -p with the kdump command line and initramfs)', () => undefined, (argv) => {
      start(new MachineRoot(resolveRoot(argv.root)), out);
    })
    .command('stop', 'unload the capture kernel (kexec -p -u)', () => undefined, (argv) => {
      stop(new MachineRoot(resolveRoot(argv.root)), out);
    })
    .command('restart', 'stop, then start', () => undefined, (argv) => {
      const root = new MachineRoot(resolveRoot(argv.root));
      stop(root, out);
      start(root, out);
    })
    .command('status', 'say whether a capture kernel is loaded (exit 0: operational, 3: not)', () => undefined, (argv) => {
      const sys = openSystem(new MachineRoot(resolveRoot(argv.root)), { readOnly: true });
      try {
        const loaded = kexecCrashLoaded(sys.kernel) !== null;
        out(loaded ? 'Kdump is operational' : 'Kdump is not operational');
        if (!loaded) status = EXIT_NOT_OPERATIONAL;
      } finally {
        closeSystem(sys);
      }
    })
    .command('estimate', 'reserved and recommended crashkernel sizes, as kdump-utils estimates them', () => undefined, (argv) => {
      estimate(new MachineRoot(resolveRoot(argv.root)), out);
    })
    .command('save', 'in the capture kernel: save vmcore-dmesg.txt and the vmcore under path (etc/kdump.conf), then final_action', () => undefined, (argv) => {
      const root = new MachineRoot(resolveRoot(argv.root));
      const conf = loadKdumpConf(root);
      const sys = openSystem(root);
      let r;
      try {
        r = kdumpSave(sys, conf, out);
      } catch (e) {
        // The system may already be closed (a failed reboot); the first error is the one to report.
        try { closeSystem(sys); } catch { /* already closed */ }
        throw e;
      }
      if (r.system) closeSystem(r.system);
      if (!r.saved) {
        throw new DegradedResult('DUMP_LOST', `save: the core collector '${conf.coreCollector.join(' ')}' failed (exit ${r.exitcode}); ${r.shown}vmcore-incomplete was not renamed to vmcore; failure_action ${r.action} ran`);
      }
      out(`kdumpctl: saved ${r.shown}vmcore`);
    })
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(msg);
    })
    .epilogue('Exit status: 0 success; 3 status: not operational; 6 save: the core collector failed (failure_action ran, no vmcore); 64 usage or configuration error; 65 corrupt input; 66 missing input (no /proc/vmcore); 74 I/O error; 75 the machine is busy.')
    .help()
    .version(false)
    .parseAsync();
  if (status !== 0) process.exitCode = status;
});
