#!/usr/bin/env node
import '../src/cli/heap.js'; // first: bounds V8's young generation (see heap.ts)
import yargs from 'yargs';
import { versionText } from '../src/cli/usage.js';
import { hideBin } from 'yargs/helpers';
import { formatSize, hex, UsageError } from '../src/codec/index.js';
import { MachineRoot, resolveRoot } from '../src/machine/index.js';
import {
  BuddyAllocator, closeSystem, kexecCrashLoaded, kexecLoad, kexecLoadCrash, kexecLoaded, kexecUnload, kexecUnloadCrash,
  KERNEL_IMAGE_MAX_BYTES, MemMap, openSystem, readKernelImageFile,
} from '../src/kernel/index.js';
import { planPanicLoad } from './load_panic.js';
import { readInitrd } from './initrd.js';
import { kexecReboot, pendingDump } from '../src/dump/index.js';
import { runCli } from '../src/cli/run.js';
import { cliExitHelp } from '../src/cli/exit.js';
import { holdMachine } from '../src/cli/hold.js';
import { EXIT_KEXEC_LOADED } from '../src/cli/exit.js';
import { machineFile } from './paths.js';

/** The running kernel's command line (/proc/cmdline), for --reuse-cmdline. */
function procCmdline(raw: Buffer): string {
  const s = raw.toString('latin1');
  const end = s.indexOf('\0');
  return (end < 0 ? s : s.slice(0, end))
    // kexec-tools' --reuse-cmdline drops only BOOT_IMAGE= (and crashkernel= for a panic kernel, which
    // this kexec does not load): crashdump= stays, so a kernel holding a dump passes it on.
    .split(/\s+/).filter((w) => w && !w.startsWith('BOOT_IMAGE=')).join(' ');
}

await runCli('kexec', async () => {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('kexec')
    .usage('$0 [options]\n\nLoad a kernel into the simulated machine\'s RAM and reboot into it (kexec-tools options).')
    .option('root', { type: 'string', describe: 'machine root directory' })
    .option('l', { alias: 'load', type: 'string', describe: `load the kernel IMAGE into memory (a regular file of at most ${formatSize(BigInt(KERNEL_IMAGE_MAX_BYTES))})` })
    .option('p', { alias: 'load-panic', type: 'string', describe: 'load the kernel IMAGE for use on panic (into the crashkernel region); with -u, unload it' })
    .option('initrd', { type: 'string', describe: 'with -p: load this initramfs with the capture kernel' })
    .option('command-line', { type: 'string', describe: 'set the kernel command line' })
    .option('append', { type: 'string', describe: 'append to the kernel command line' })
    .option('reuse-cmdline', { type: 'boolean', describe: 'start from the running kernel\'s command line, less BOOT_IMAGE= (crashdump= is kept)' })
    .option('u', { alias: 'unload', type: 'boolean', describe: 'unload the loaded kernel' })
    .option('e', { alias: 'exec', type: 'boolean', describe: 'reboot into the loaded kernel now (no dump)' })
    .option('s', { alias: 'status', type: 'boolean', describe: 'show what is loaded (with --json: as JSON)' })
    .option('S', { type: 'boolean', describe: 'kexec-tools\' status option: exit 1 if a kernel of the type is loaded, 0 if not, printing nothing; the type is the panic kernel unless -l is given (-p: the panic kernel); supersedes every other option' })
    .option('json', { type: 'boolean', describe: 'with -s: print the status as JSON' })
    .option('debug', { type: 'boolean' })
    .conflicts('l', ['u', 'e', 's', 'p'])
    .conflicts('p', ['e', 's'])
    .conflicts('u', ['e', 's'])
    .strictOptions()
    .fail((msg, err) => { if (err) throw err; throw new UsageError(msg); })
    .epilogue(cliExitHelp('kexec'))
    .help().version(versionText('kexec'))
    .parseAsync();
  const root = new MachineRoot(resolveRoot(argv.root));
  if (argv.S) {
    // kexec-tools' k_status(): /sys/kernel/kexec_crash_loaded by default, kexec_loaded with -l; loaded is exit 1.
    const sys = openSystem(root, { readOnly: true });
    let loaded: boolean;
    try {
      loaded = argv.l !== undefined ? kexecLoaded(sys.kernel) !== null : kexecCrashLoaded(sys.kernel) !== null;
    } finally {
      closeSystem(sys);
    }
    if (loaded) process.exitCode = EXIT_KEXEC_LOADED;
    return;
  }
  const positional = argv._.map(String);
  if (positional.length > 1) throw new UsageError(`one kernel image, not ${positional.length} (${positional.join(' ')})`);
  // kexec-tools takes the image as an argument: "kexec -p IMAGE" and "kexec -p --initrd=F IMAGE" both work.
  const panic = argv.p !== undefined ? (argv.p !== '' ? argv.p : positional[0] ?? '') : undefined;
  const load = argv.l !== undefined ? (argv.l !== '' ? argv.l : positional[0] ?? '') : undefined;
  for (const given of [argv.p, argv.l]) {
    if (given !== undefined && given !== '' && positional.length) throw new UsageError(`one kernel image, not two (${given} ${positional[0]})`);
  }
  if (argv.l === undefined && argv.p === undefined && positional.length) throw new UsageError(`${positional[0]}: say -l or -p to load it`);
  if (load === undefined && panic === undefined && !argv.u && !argv.e && !argv.s) throw new UsageError('give one of -l IMAGE, -p IMAGE, -u, -p -u, -e, -s (see --help)');
  const loading = load !== undefined || (panic !== undefined && !argv.u);
  if (!loading && (argv['command-line'] !== undefined || argv.append !== undefined || argv['reuse-cmdline'])) {
    throw new UsageError('--command-line, --append and --reuse-cmdline go with -l or -p');
  }
  if (argv.initrd !== undefined && (panic === undefined || argv.u)) throw new UsageError('--initrd goes with -p');
  if (argv.json && !argv.s) throw new UsageError('--json goes with -s');
  await holdMachine(root, 'kexec', () => {
    let sys = openSystem(root);
    try {
      const kernel = sys.kernel;
      const memmap = new MemMap(kernel);
      const buddy = new BuddyAllocator(kernel, memmap);
      // kexec-tools' get_command_line(): a panic kernel reusing the command line does not get crashkernel=.
      const reused = argv['reuse-cmdline'] ? procCmdline(kernel.readBytes('boot_command_line')) : '';
      const parts = [
        panic !== undefined ? reused.split(' ').filter((w) => !w.startsWith('crashkernel=')).join(' ') : reused,
        argv['command-line'] ?? '',
        argv.append ?? '',
      ];
      const cmdline = parts.filter((p) => p !== '').join(' ');
      if (panic !== undefined && argv.u) {
        const had = kexecUnloadCrash(kernel, buddy);
        sys.ram.flush();
        process.stdout.write(had ? 'kexec: unloaded the panic kernel\n' : 'kexec: no panic kernel was loaded\n');
      } else if (panic !== undefined) {
        if (panic === '') throw new UsageError('-p needs a kernel image path');
        const image = readKernelImageFile(machineFile(root, panic, 'kernel image'));
        const initrd = argv.initrd !== undefined ? readInitrd(machineFile(root, argv.initrd, 'initrd')) : null;
        const plan = planPanicLoad(kernel, image, cmdline, initrd);
        kexecLoadCrash(kernel, buddy, memmap, plan.spec);
        sys.ram.flush();
        process.stdout.write(`kexec: loaded panic kernel ${image.layout.config.release} at ${hex(plan.loadAddr)} in the crashkernel region ${hex(plan.region.start)}-${hex(plan.region.end - 1n)}, elfcorehdr at ${hex(plan.elfcorehdr)}, ${plan.freeAfterBoot >> 10n} KiB free after its boot; command line "${plan.cmdline}"\n`);
      } else if (load !== undefined) {
        if (load === '') throw new UsageError('-l needs a kernel image path');
        const image = readKernelImageFile(machineFile(root, load, 'kernel image'));
        const loaded = kexecLoad(kernel, buddy, memmap, image, cmdline);
        sys.ram.flush();
        process.stdout.write(`kexec: loaded ${image.layout.config.release} (${image.segments.length} segments, entry ${hex(loaded.image.start)}) command line "${cmdline}"\n`);
      } else if (argv.u) {
        const had = kexecUnload(kernel, buddy, memmap);
        sys.ram.flush();
        process.stdout.write(had ? 'kexec: unloaded\n' : 'kexec: nothing was loaded\n');
      } else if (argv.s) {
        const loaded = kexecLoaded(kernel);
        const crash = kexecCrashLoaded(kernel);
        if (argv.json) {
          const img = (i: { release: string; start: bigint; nr_segments: number | bigint; cmdline: string } | undefined): unknown => (i
            ? { release: i.release, entry: hex(i.start), nr_segments: Number(i.nr_segments), cmdline: i.cmdline, crashdump: /(?:^|\s)crashdump=(\S+)/.exec(i.cmdline)?.[1] ?? null }
            : null);
          process.stdout.write(`${JSON.stringify({ kexec_loaded: loaded !== null, kexec_crash_loaded: crash !== null, image: img(loaded?.image), panic_image: img(crash?.image) }, null, 2)}\n`);
          return;
        }
        process.stdout.write(loaded
          ? `loaded: ${loaded.image.release}, entry ${hex(loaded.image.start)}, ${loaded.image.nr_segments} segments, command line "${loaded.image.cmdline}"\n`
          : 'not loaded\n');
        if (crash) process.stdout.write(`panic kernel: ${crash.image.release}, purgatory at ${hex(crash.image.start)}, ${crash.image.nr_segments} segments, command line "${crash.image.cmdline}"\n`);
      } else if (argv.e) {
        if (!kexecLoaded(kernel)) throw new UsageError('kexec -e: no kernel is loaded (use kexec -l first)');
        sys = kexecReboot(sys);
        const pending = pendingDump(sys.kernel);
        process.stdout.write(`kexec: booted ${sys.kernel.release}${pending ? `; saved dump found at ${hex(pending.addr)}` : ''}\n`);
      }
    } finally {
      closeSystem(sys);
    }
  });
});
