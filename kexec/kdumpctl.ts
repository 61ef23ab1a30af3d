#!/usr/bin/env node
/**
 * kdumpctl (kdump-utils) for the simulated machine: start / stop / status /
 * restart load and unload the capture kernel with kexec -p (or register
 * and unregister fadump), estimate prints what kdump-utils' estimate
 * prints, save runs in the capture kernel what its initramfs runs
 * (kdump.sh).
 */
import '../src/cli/heap.js'; // first: bounds V8's young generation (see heap.ts)
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { DegradedResult } from '../src/codec/index.js';
import { MachineRoot, resolveRoot } from '../src/machine/index.js';
import { closeSystem, openSystem } from '../src/kernel/index.js';
import { usageFailure, versionText } from '../src/cli/usage.js';

import { runCli } from '../src/cli/run.js';
import { loadKdumpConf } from './kdump_conf.js';
import { kdumpSave } from './kdump_save.js';
import { EXIT_NOT_OPERATIONAL, kdumpctlEstimate, kdumpctlOperational, kdumpctlStart, kdumpctlStop } from './kdumpctl_ops.js';

/** The commands, for the did-you-mean of an unknown one. */
const COMMANDS = ['start', 'stop', 'restart', 'status', 'estimate', 'save'];

await runCli('kdumpctl', async () => {
  const out = (l: string): void => { process.stdout.write(`${l}\n`); };
  let status = 0;
  await yargs(hideBin(process.argv))
    .scriptName('kdumpctl')
    .usage('$0 <command> [options]\n\nkdump-utils\' kdumpctl for the simulated machine: load the capture kernel into the crashkernel region, and save /proc/vmcore with the real makedumpfile after a crash. When the kernel booted with fadump=on (/sys/kernel/fadump/enabled is 1) the dump mode is fadump: start and stop register and unregister firmware-assisted dump (echo 1 or 0 > /sys/kernel/fadump/registered, checked by reading it back), status reads it, and save works the same in the capture boot the firmware restarted. Configuration: etc/kdump.conf and etc/sysconfig/kdump under the machine root (written with the defaults on first use).')
    .option('root', { type: 'string', describe: 'machine root directory (default: $LKCD_ROOT, else var/ of the checkout)' })
    .option('debug', { type: 'boolean', describe: 'print stack traces on errors' })
    .command('start', 'load the capture kernel (kexec -p with the kdump command line and initramfs), or in fadump mode register fadump', () => undefined, (argv) => {
      kdumpctlStart(new MachineRoot(resolveRoot(argv.root)), out);
    })
    .command('stop', 'unload the capture kernel (kexec -p -u), or in fadump mode unregister fadump', () => undefined, (argv) => {
      kdumpctlStop(new MachineRoot(resolveRoot(argv.root)), out);
    })
    .command('restart', 'stop, then start', () => undefined, (argv) => {
      const root = new MachineRoot(resolveRoot(argv.root));
      kdumpctlStop(root, out);
      kdumpctlStart(root, out);
    })
    .command('status', 'say whether a capture kernel is loaded (exit 0: operational, 3: not)', () => undefined, (argv) => {
      const sys = openSystem(new MachineRoot(resolveRoot(argv.root)), { readOnly: true });
      try {
        const loaded = kdumpctlOperational(sys);
        out(loaded ? 'Kdump is operational' : 'Kdump is not operational');
        if (!loaded) status = EXIT_NOT_OPERATIONAL;
      } finally {
        closeSystem(sys);
      }
    })
    .command('estimate', 'reserved and recommended crashkernel sizes, as kdump-utils estimates them', () => undefined, (argv) => {
      kdumpctlEstimate(new MachineRoot(resolveRoot(argv.root)), out);
    })
    .command('save', 'in the capture kernel: save vmcore-dmesg.txt, the vmcore and the device dumps of /sys/kernel/crashdd (crashdd/) under path (etc/kdump.conf), index the vmcore beside the LKCD dumps (design kdump or fadump: lkcd list, show, read, dmesg, export), then final_action', () => undefined, (argv) => {
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
      out(`kdumpctl: saved ${r.shown}vmcore (design ${r.design})`);
    })
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .fail((msg, err) => { if (err) throw err; throw usageFailure('kdumpctl', msg, COMMANDS, hideBin(process.argv)); })
    .epilogue('Exit status: 0 success; 3 status: not operational; 6 save: the core collector failed (failure_action ran, no vmcore); 64 usage or configuration error; 65 corrupt input; 66 missing input (no /proc/vmcore); 74 I/O error; 75 the machine is busy.')
    .help()
    .version(versionText('kdumpctl'))
    .parseAsync();
  if (status !== 0) process.exitCode = status;
});
