#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { formatSize, hex, parseInteger, parseSize, UsageError } from '../codec/index.js';
import { MachineRoot, resolveRoot } from '../machine/index.js';
import {
  closeSystem, openSystem, PAGE_TYPES, powerOff, powerOn, PROFILE_NAMES, runWorkload, systemDmesg,
  systemStatus, systemTasks, taskStateName, type SystemStatus,
} from '../kernel/index.js';
import { exportLiveVmcore } from '../dump/index.js';
import { progressBar } from './progress.js';
import { runCli } from './run.js';

function rootOf(argv: { root?: string }): MachineRoot {
  return new MachineRoot(resolveRoot(argv.root));
}

function statusText(s: SystemStatus): string {
  const pct = (n: bigint): string => `${((Number(n) * 100) / Number(s.pages.total)).toFixed(1)}%`;
  const up = Number(s.uptime_ns / 1_000_000n) / 1000;
  const lines = [
    `machine:   ${formatSize(s.ram_bytes)} RAM, ${s.pages.total} page frames, kernel at ${hex(s.kernel_base)}, CR3 ${hex(s.cr3)}`,
    `kernel:    Linux ${s.release} on ${s.hostname}, up ${up.toFixed(3)} s`,
    `cmdline:   ${s.cmdline}`,
    `workload:  ${s.profile} (seed ${s.seed}), ${s.tasks} tasks`,
    'pages:',
    ...PAGE_TYPES.map((t) => `  ${t.padEnd(9)} ${String(s.pages[t]).padStart(10)}  ${pct(s.pages[t]).padStart(6)}`),
  ];
  return lines.join('\n') + '\n';
}

function statusJson(s: SystemStatus): string {
  return JSON.stringify(s, (_k, v) => (typeof v === 'bigint' ? (v > BigInt(Number.MAX_SAFE_INTEGER) ? hex(v) : Number(v)) : v), 2) + '\n';
}

await runCli('machine', async () => {
  await yargs(hideBin(process.argv))
    .scriptName('machine')
    .usage('$0 <command> [options]\n\nThe simulated x86_64 machine: power, workload, and what its kernel shows.')
    .option('root', { type: 'string', describe: 'machine root directory (default: $LKCD_ROOT, else var/ of the checkout)' })
    .option('debug', { type: 'boolean', describe: 'print stack traces on errors' })
    .command('power-on', 'cold power-on: clear RAM, boot the kernel, start the workload', (y) => y
      .option('mem', { type: 'string', default: '1G', describe: 'RAM size, 16M to 16G' })
      .option('profile', { type: 'string', default: 'database', describe: `workload: ${PROFILE_NAMES.join(', ')} (db = database)` })
      .option('seed', { type: 'string', default: '1', describe: 'workload seed (same seed, same memory)' })
      .option('hostname', { type: 'string', default: 'lkcd-sim' })
      .option('cmdline', { type: 'string', describe: 'kernel command line (default: root=/dev/vda1 ... panic=5)' }),
    (argv) => {
      const sys = powerOn(rootOf(argv), { mem: parseSize(argv.mem, '--mem'), profile: argv.profile, seed: parseInteger(argv.seed, '--seed'), hostname: argv.hostname, cmdline: argv.cmdline });
      try {
        process.stdout.write(statusText(systemStatus(sys)));
      } finally {
        closeSystem(sys);
      }
    })
    .command('power-off', 'turn the machine off (RAM is cleared at the next power-on)', () => undefined, (argv) => {
      powerOff(rootOf(argv));
    })
    .command('status', 'RAM, kernel, command line and page counts, read from the kernel in RAM', (y) => y
      .option('json', { type: 'boolean', default: false }),
    (argv) => {
      const sys = openSystem(rootOf(argv), { readOnly: true });
      try {
        const s = systemStatus(sys);
        process.stdout.write(argv.json ? statusJson(s) : statusText(s));
      } finally {
        closeSystem(sys);
      }
    })
    .command('dmesg', 'print the kernel log from RAM (as vmcore-dmesg prints it)', () => undefined, (argv) => {
      const sys = openSystem(rootOf(argv), { readOnly: true });
      try {
        process.stdout.write(systemDmesg(sys));
      } finally {
        closeSystem(sys);
      }
    })
    .command('ps', 'the task list, walked from init_task', () => undefined, (argv) => {
      const sys = openSystem(rootOf(argv), { readOnly: true });
      try {
        process.stdout.write('   PID  ST  TASK              COMM\n');
        for (const t of systemTasks(sys)) {
          process.stdout.write(`${String(t.pid).padStart(6)}  ${taskStateName(t.state)}  ${hex(t.address).padEnd(18)}  ${t.mm === 0n ? `[${t.comm}]` : t.comm}\n`);
        }
      } finally {
        closeSystem(sys);
      }
    })
    .command('run', 'run the workload for simulated seconds: memory churns, the log grows', (y) => y
      .option('seconds', { type: 'string', default: '10' }),
    (argv) => {
      const sys = openSystem(rootOf(argv));
      try {
        const r = runWorkload(sys, parseInteger(argv.seconds, '--seconds'));
        process.stdout.write(`ran ${argv.seconds} s: ${r.freed} pages freed, ${r.allocated} allocated, ${r.lines} log lines\n`);
      } finally {
        closeSystem(sys);
      }
    })
    .command('export-vmcore', 'write an ELF vmcore of live RAM (for crash, makedumpfile, vmcore-dmesg, gdb)', (y) => y
      .option('o', { alias: 'output', type: 'string', demandOption: true, describe: 'output file' }),
    (argv) => {
      const sys = openSystem(rootOf(argv), { readOnly: true });
      const bar = progressBar('export-vmcore');
      try {
        const r = exportLiveVmcore(sys, argv.o, bar);
        bar.end();
        process.stdout.write(`${argv.o}: ${r.bytes} bytes\n`);
      } finally {
        closeSystem(sys);
      }
    })
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(msg);
    })
    .help()
    .version(false)
    .parseAsync();
});
