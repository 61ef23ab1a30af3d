#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { UsageError } from '../src/codec/index.js';
import { MachineRoot, resolveRoot } from '../src/machine/index.js';
import { runCli } from '../src/cli/run.js';
import { lkcdConfig } from './config.js';

function rootOf(argv: { root?: string }): MachineRoot {
  return new MachineRoot(resolveRoot(argv.root));
}

await runCli('lkcd', async () => {
  await yargs(hideBin(process.argv))
    .scriptName('lkcd')
    .usage('$0 <command> [options]\n\nlkcdutils for the simulated machine: configure dumping, save and read dumps.')
    .option('root', { type: 'string', describe: 'machine root directory (default: $LKCD_ROOT, else var/ of the checkout)' })
    .option('debug', { type: 'boolean', describe: 'print stack traces on errors' })
    .command('config', 'push etc/sysconfig/dump into the running kernel (arms the dump, preloads kexec with crashdump=)', () => undefined, (argv) => {
      for (const l of lkcdConfig(rootOf(argv)).lines) process.stdout.write(`${l}\n`);
    })
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .fail((msg, err) => { if (err) throw err; throw new UsageError(msg); })
    .help().version(false)
    .parseAsync();
});
