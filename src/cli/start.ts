#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { formatSize, hex, parseInteger, parseSize, UsageError } from '../codec/index.js';
import { MachineRoot, resolveRoot } from '../machine/index.js';
import { closeSystem, PAGE_TYPES, powerOn, PROFILE_NAMES, systemStatus } from '../kernel/index.js';
import { runCli } from './run.js';

/**
 * `npm start`: the main job on the default machine. Powers on a machine
 * under var/ (or --root) and shows what its kernel reports.
 */
await runCli('start', async () => {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('npm start --')
    .usage('$0 [options]\n\nPowers on the simulated machine under var/ and prints its status.')
    .option('root', { type: 'string', describe: 'machine root (default: $LKCD_ROOT, else var/)' })
    .option('mem', { type: 'string', default: '1G', describe: 'RAM size, 16M to 16G' })
    .option('profile', { type: 'string', default: 'database', describe: `workload: ${PROFILE_NAMES.join(', ')}` })
    .option('seed', { type: 'string', default: '1', describe: 'workload seed' })
    .option('debug', { type: 'boolean', describe: 'stack traces on errors' })
    .strict()
    .fail((msg, err) => { if (err) throw err; throw new UsageError(msg); })
    .help().version(false)
    .parseAsync();
  const root = new MachineRoot(resolveRoot(argv.root));
  const t0 = Date.now();
  const sys = powerOn(root, { mem: parseSize(argv.mem, '--mem'), profile: argv.profile, seed: parseInteger(argv.seed, '--seed') });
  try {
    const s = systemStatus(sys);
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    const out = [
      `Powered on ${formatSize(s.ram_bytes)} machine at ${root.dir} in ${secs} s`,
      `  kernel   Linux ${s.release} (${hex(s.kernel_base)}), ${s.tasks} tasks, workload ${s.profile} seed ${s.seed}`,
      `  memory   ${PAGE_TYPES.map((t) => `${t} ${s.pages[t]}`).join(', ')} (of ${s.pages.total} frames)`,
      '',
      'Next:',
      `  npx machine --root ${root.dir} dmesg`,
      `  npx machine --root ${root.dir} status`,
      `  npx machine --root ${root.dir} export-vmcore -o /tmp/vmcore && crash --log /tmp/vmcore`,
    ];
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    closeSystem(sys);
  }
});
