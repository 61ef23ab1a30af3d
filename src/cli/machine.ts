#!/usr/bin/env node
import './heap.js'; // first: bounds V8's young generation (see heap.ts)
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { DegradedResult, formatSize, hex, parseInteger, parseSize, UsageError } from '../codec/index.js';
import { MachineRoot, parseDeviceList, readState, resolveRoot } from '../machine/index.js';
import {
  closeSystem, openSystem, PAGE_TYPES, powerOff, powerOn, PROFILE_NAMES, runWorkload, systemDmesg,
  systemStatus, systemTasks, taskStateName, type SystemStatus,
} from '../kernel/index.js';
import type { CrashOutcome } from '../dump/index.js';
import {
  crashNotesLocation, iomemText, kernelOops, kexecCrashLoaded, kexecCrashSize, kexecLoaded, procVmcore, vmcoreinfoNoteLocation,
  type CrashCause, type RunningSystem,
} from '../kernel/index.js';
import { runSys } from './sys.js';
import { deviceDumpTo, deviceText, lspci, lspciText } from './devices.js';
import { holdMachine } from './hold.js';
import { progressBar } from './progress.js';
import { usageFailure, versionText } from './usage.js';

import { runCli } from './run.js';
import { cliExitHelp } from './exit.js';

/** The commands, for the did-you-mean of an unknown one. */
const COMMANDS = ['power-on', 'power-off', 'status', 'dmesg', 'ps', 'run', 'export-vmcore', 'panic', 'oops', 'sysrq', 'reset', 'reboot', 'sys', 'proc'];

/**
 * The dump layer, loaded by the commands that use it: power-on and the
 * read-only commands do without its modules (about 5 MiB resident).
 */
type DumpLayer = typeof import('../dump/index.js');
function dumpLayer(): Promise<DumpLayer> {
  return import('../dump/index.js');
}

function rootOf(argv: { root?: string }): MachineRoot {
  return new MachineRoot(resolveRoot(argv.root));
}

/** Runs a command under the machine lock, held for the whole command. */
function held(argv: { root?: string }, fn: () => void | Promise<void>): Promise<void> {
  return holdMachine(rootOf(argv), 'machine', fn);
}

/** Seconds since the epoch as `2026-11-18 08:53:21 UTC`. */
function utc(sec: bigint): string {
  return `${new Date(Number(sec) * 1000).toISOString().replace('T', ' ').slice(0, 19)} UTC`;
}

function statusText(s: SystemStatus): string {
  const pct = (n: bigint): string => `${((Number(n) * 100) / Number(s.pages.total)).toFixed(1)}%`;
  const up = Number(s.uptime_ns / 1_000_000n) / 1000;
  const lines = [
    `machine:   ${formatSize(s.ram_bytes)} RAM, ${s.pages.total} page frames, kernel at ${hex(s.kernel_base)}, CR3 ${hex(s.cr3)}`,
    `kernel:    Linux ${s.release} on ${s.hostname}, up ${up.toFixed(3)} s`,
    `clock:     RTC ${utc(s.rtc_sec)}, booted ${utc(s.boot_time)}`,
    `cmdline:   ${s.cmdline}`,
    `workload:  ${s.profile || 'none'} (seed ${s.seed}), ${s.tasks} tasks`,
    ...(s.crashkernel ? [`crashkernel: ${formatSize(s.crashkernel.end - s.crashkernel.start)} reserved at ${hex(s.crashkernel.start)}-${hex(s.crashkernel.end - 1n)}, panic kernel ${s.kexec_crash_loaded ? 'loaded' : 'not loaded'}`] : []),
    ...(s.fadump ? [fadumpLine(s)] : []),
    ...(s.kdump ? [`kdump:     capture kernel${s.vmcore_bytes !== null ? `: /proc/vmcore of ${s.vmcore_bytes} bytes` : ': no /proc/vmcore (see machine dmesg)'}`] : []),
    'pages:',
    ...PAGE_TYPES.map((t) => `  ${t.padEnd(9)} ${String(s.pages[t]).padStart(10)}  ${pct(s.pages[t]).padStart(6)}`),
  ];
  return lines.join('\n') + '\n';
}

/** The status line of firmware-assisted dump: registration, boot memory, what is held. */
function fadumpLine(s: SystemStatus): string {
  const f = s.fadump!;
  const held = f.reserved ? `${formatSize(f.reserved.end - f.reserved.start)} reserved at ${hex(f.reserved.start)}-${hex(f.reserved.end - 1n)}` : 'nothing reserved (see machine dmesg)';
  if (f.dumpActive) {
    return `fadump:    dump active: ${s.vmcore_bytes !== null ? `/proc/vmcore of ${s.vmcore_bytes} bytes` : 'no /proc/vmcore'}; boot memory ${formatSize(f.bootMemorySize)}, ${held} until release_mem`;
  }
  return `fadump:    ${f.registered ? 'registered' : 'not registered'}; boot memory ${formatSize(f.bootMemorySize)}, ${held}`;
}

function statusJson(s: SystemStatus): string {
  return JSON.stringify(s, (_k, v) => (typeof v === 'bigint' ? (v > BigInt(Number.MAX_SAFE_INTEGER) ? hex(v) : Number(v)) : v), 2) + '\n';
}

function procRead(sys: RunningSystem, p: string, dump: DumpLayer): string {
  const clean = p.replace(/^\/?(proc\/)?/, '');
  if (clean === 'cmdline') {
    const raw = sys.kernel.readBytes('boot_command_line');
    return raw.subarray(0, raw.indexOf(0)).toString('latin1');
  }
  if (clean === 'sys/kernel/kexec_loaded') return kexecLoaded(sys.kernel) ? '1' : '0';
  if (clean === 'sys/kernel/kexec_crash_loaded') return kexecCrashLoaded(sys.kernel) ? '1' : '0';
  if (clean === 'sys/kernel/kexec_crash_size') return `${kexecCrashSize(sys.kernel)}`;
  if (clean === 'iomem') return iomemText(sys.kernel).replace(/\n$/, '');
  if (clean === 'sys/kernel/vmcoreinfo') {
    const v = vmcoreinfoNoteLocation(sys.kernel);
    return `${v.paddr.toString(16)} ${v.size.toString(16)}`;
  }
  const cpu = /^sys\/devices\/system\/cpu\/cpu0\/(crash_notes|crash_notes_size)$/.exec(clean);
  if (cpu) {
    const n = crashNotesLocation(sys.kernel, 0);
    return cpu[1] === 'crash_notes' ? n.paddr.toString(16) : `${n.size}`;
  }
  const m = /^sys\/kernel\/dump\/(addr|level|flags|compress|device)$/.exec(clean);
  if (m) return dump.procDumpValues(sys.kernel)[m[1]];
  if (clean === 'vmcore') throw new UsageError('proc: vmcore is a binary file: give -o FILE to copy it');
  throw new UsageError(`proc: no such file '${p}' (${PROC_FILES})`);
}

/**
 * Why a crash lost the dump (exit DUMP_LOST), or null when one survives: the
 * dump this crash took, or one already held in memory (the design keeps
 * one dump at a time; the console says this crash was not dumped).
 */
function dumpLost(out: CrashOutcome): string | null {
  // The capture kernel holds the old kernel's memory in /proc/vmcore: kdumpctl save takes it from there.
  if (out.after === 'kdump') return null;
  if (out.after === 'fadump') {
    return procVmcore(out.system.kernel) ? null : 'the firmware preserved memory, but the capture boot could not use the dump (see machine dmesg: fadump)';
  }
  if (out.after === 'cold-reboot') {
    const had = out.dump ? 'the dump stage 1 saved' : out.heldDump ? `the dump held in memory at ${hex(out.heldDump)}` : null;
    return had
      ? `${had} was lost: no kexec image was loaded, and the cold reboot cleared memory`
      : `this crash was not dumped (${out.noDumpReason ?? 'no dump'}), and the cold reboot cleared memory`;
  }
  if (out.after === 'warm-reboot') {
    const had = out.dump ? 'the dump stage 1 saved' : out.heldDump ? `the dump held in memory at ${hex(out.heldDump)}` : null;
    // RAM survived, but the firmware booted a kernel without crashdump=: nothing finds the dump again.
    if (had) return `${had} was lost: no kexec image was loaded, and the warm reboot booted a kernel without crashdump=`;
  }
  if (!out.dump && out.heldDump === undefined) return `this crash was not dumped: ${out.noDumpReason ?? 'no dump was taken'}`;
  return null;
}

const PROC_FILES = 'cmdline, iomem, vmcore -o FILE, sys/kernel/{kexec_loaded,kexec_crash_loaded,kexec_crash_size,vmcoreinfo}, '
  + 'sys/devices/system/cpu/cpu0/{crash_notes,crash_notes_size}, sys/kernel/dump/{addr,level,flags,compress,device}';

/** The address of a dump held in memory awaiting writeout, or null (also when the machine is off). */
function heldDumpAddr(root: MachineRoot, dump: DumpLayer): bigint | null {
  const st = readState(root);
  if (!st || st.power !== 'on' || !st.cpu) return null;
  const sys = openSystem(root, { readOnly: true });
  try {
    return dump.dumpAwaitingWriteout(sys.kernel)?.addr ?? null;
  } finally {
    closeSystem(sys);
  }
}

/** LKCD_PANIC_CODEC is checked before the machine is touched: a typo must not cost the dump. */
function checkPanicCodec(dump: DumpLayer): void {
  dump.panicCompress(dump.DUMP_COMPRESS_GZIP);
}

async function crashAndReport(root: MachineRoot, cause: CrashCause): Promise<void> {
  const dump = await dumpLayer();
  const { crashMachine, pendingDump } = dump;
  checkPanicCodec(dump);
  const sys = openSystem(root);
  let out: CrashOutcome | null = null;
  let lost: string | null = null;
  try {
    // Stage 1 is the longest step of a panic: a bar on a terminal, nothing otherwise.
    const bar = progressBar('dump: stage 1');
    try {
      out = crashMachine(sys, cause, { onStage1Progress: bar });
    } finally { bar.end(); }
    for (const l of out.console) process.stdout.write(`${l}\n`);
    const after = out.system;
    if (out.after === 'kexec') {
      const pending = pendingDump(after.kernel);
      process.stdout.write(`kexec: booted ${after.kernel.release}${pending ? `; saved dump reserved at ${hex(pending.addr)}` : '; no saved dump found'}\n`);
    } else if (out.after === 'kdump') {
      const v = procVmcore(after.kernel);
      process.stdout.write(`kdump: capture kernel ${after.kernel.release} booted in the crashkernel region at ${hex(after.state.cpu.kernel_base)}; ${v ? `/proc/vmcore holds ${v.size} bytes (machine proc vmcore -o FILE, kdumpctl save)` : 'no /proc/vmcore (see machine dmesg)'}\n`);
    } else if (out.after === 'fadump') {
      const v = procVmcore(after.kernel);
      process.stdout.write(`fadump: ${after.kernel.release} booted by the firmware in boot memory; ${v ? `/proc/vmcore holds ${v.size} bytes (machine proc vmcore -o FILE, kdumpctl save; then machine sys write kernel/fadump/release_mem 1)` : 'no /proc/vmcore (see machine dmesg)'}\n`);
    } else if (out.after === 'cold-reboot') {
      process.stdout.write(`cold reboot: ${after.kernel.release} booted on cleared memory\n`);
    } else if (out.after === 'warm-reboot') {
      process.stdout.write(`warm reboot: ${after.kernel.release} booted; memory was kept\n`);
    }
    const p = out.pstore;
    if (p.dmesgZone !== null) process.stdout.write(`pstore: the panic log was saved in ramoops dmesg zone ${p.dmesgZone}\n`);
    if (p.devcd) process.stdout.write(`pstore: device coredump of ${p.devcd.dumped.length} device${p.devcd.dumped.length === 1 ? '' : 's'}${p.devcd.skipped.length ? `; no room for ${p.devcd.skipped.join(', ')}` : ''}\n`);
    // Decided while the machine is open (a fadump capture boot is asked whether it has /proc/vmcore).
    lost = dumpLost(out);
  } finally {
    closeSystem(out ? out.system : sys);
  }
  // After the normal output and the committed step: the exit status says the dump is gone.
  if (lost) throw new DegradedResult('DUMP_LOST', lost);
}

await runCli('machine', async () => {
  await yargs(hideBin(process.argv))
    .scriptName('machine')
    .usage('$0 <command> [options]\n\nThe simulated x86_64 machine: power, workload, and what its kernel shows.\nEach command is one atomic step under the machine lock: killed, the next command rolls it back.')
    .epilog('Exit status: 0 done; 6 a crash lost the dump; 64 usage; 65 corrupt input; 66 missing input; 74 I/O; 75 busy (another command holds the machine).')
    .option('root', { type: 'string', describe: 'machine root directory (default: $LKCD_ROOT, else var/ of the checkout)' })
    .option('debug', { type: 'boolean', describe: 'print stack traces on errors' })
    .command('power-on', 'cold power-on: clear RAM, boot the kernel (built first if the build changed: vmlinuz, System.map, Kerntypes, the debug vmlinux), start the workload', (y) => y.epilogue(cliExitHelp('machine', 'power-on'))
      .option('mem', { type: 'string', default: '1G', describe: 'RAM size, 16M to 16G' })
      .option('profile', { type: 'string', default: 'database', describe: `workload: ${PROFILE_NAMES.join(', ')} (db = database)` })
      .option('seed', { type: 'string', default: '1', describe: 'workload seed (same seed, same memory)' })
      .option('hostname', { type: 'string', default: 'lkcd-sim' })
      .option('cmdline', { type: 'string', describe: 'kernel command line (default: root=/dev/vda1 ... panic=5)' })
      .option('devices', { type: 'string', default: 'all', describe: 'PCI devices fitted: all, none, or a list of nic (cxgb4-like T6 at 02:00.4), hba (SAS3008 at 03:00.0), nvme (04:00.0)' }),
    (argv) => {
      const sys = powerOn(rootOf(argv), {
        mem: parseSize(argv.mem, '--mem'), profile: argv.profile, seed: parseInteger(argv.seed, '--seed'), hostname: argv.hostname, cmdline: argv.cmdline,
        devices: parseDeviceList(argv.devices),
        onNote: (l) => process.stderr.write(`machine: ${l}\n`),
      });
      try {
        process.stdout.write(statusText(systemStatus(sys)));
      } finally {
        closeSystem(sys);
      }
    })
    .command('power-off', 'turn the machine off (RAM is cleared at the next power-on); refused while a dump is held in memory awaiting writeout, unless --force', (y) => y.epilogue(cliExitHelp('machine', 'power-off'))
      .option('force', { type: 'boolean', default: false, describe: 'power off even though a dump held in memory (not yet written out by lkcd config) is lost' }),
    (argv) => held(argv, async () => {
      const held = heldDumpAddr(rootOf(argv), await dumpLayer());
      if (held !== null) {
        const what = `a dump held in memory at ${hex(held)} awaits writeout (lkcd config writes it to the dump device)`;
        if (!argv.force) throw new UsageError(`${what}: powering off would lose it; run lkcd config first, or machine power-off --force`);
        process.stderr.write(`machine: warning: ${what}: lost by this power-off (--force)\n`);
      }
      powerOff(rootOf(argv));
    }))
    .command('status', 'RAM, kernel, the RTC and boot time, command line and page counts, read from the kernel in RAM and the RTC', (y) => y.epilogue(cliExitHelp('machine', 'status'))
      .option('json', { type: 'boolean', default: false }),
    (argv) => held(argv, () => {
      const sys = openSystem(rootOf(argv), { readOnly: true });
      try {
        const s = systemStatus(sys);
        process.stdout.write(argv.json ? statusJson(s) : statusText(s));
      } finally {
        closeSystem(sys);
      }
    }))
    .command('dmesg', 'print the kernel log from RAM (as vmcore-dmesg prints it)', (y) => y.epilogue(cliExitHelp('machine', 'dmesg')), (argv) => held(argv, () => {
      const sys = openSystem(rootOf(argv), { readOnly: true });
      try {
        process.stdout.write(systemDmesg(sys));
      } finally {
        closeSystem(sys);
      }
    }))
    .command('ps', 'the task list, walked from init_task', (y) => y.epilogue(cliExitHelp('machine', 'ps')).option('json', { type: 'boolean', default: false }), (argv) => held(argv, () => {
      const sys = openSystem(rootOf(argv), { readOnly: true });
      try {
        if (argv.json) {
          // Addresses as 0x strings, as lkcd analyze --json's tasks.
          const tasks = systemTasks(sys).map((t) => ({ pid: t.pid, state: taskStateName(t.state), address: hex(t.address), comm: t.comm, kernel_thread: t.mm === 0n }));
          process.stdout.write(`${JSON.stringify(tasks, null, 2)}\n`);
          return;
        }
        process.stdout.write('   PID  ST  TASK              COMM\n');
        for (const t of systemTasks(sys)) {
          process.stdout.write(`${String(t.pid).padStart(6)}  ${taskStateName(t.state)}  ${hex(t.address).padEnd(18)}  ${t.mm === 0n ? `[${t.comm}]` : t.comm}\n`);
        }
      } finally {
        closeSystem(sys);
      }
    }))
    .command('run', 'run the workload for simulated seconds: memory churns, the log grows', (y) => y.epilogue(cliExitHelp('machine', 'run'))
      .option('seconds', { type: 'string', default: '10' }),
    (argv) => held(argv, () => {
      const sys = openSystem(rootOf(argv));
      try {
        const r = runWorkload(sys, parseInteger(argv.seconds, '--seconds'));
        process.stdout.write(`ran ${argv.seconds} s: ${r.freed} pages freed, ${r.allocated} allocated, ${r.lines} log lines\n`);
      } finally {
        closeSystem(sys);
      }
    }))
    .command('lspci', 'the PCI functions fitted (lspci -Dnn style; a function the crash left wedged says so)', (y) => y.epilogue(cliExitHelp('machine', 'lspci'))
      .option('json', { type: 'boolean', default: false }),
    (argv) => held(argv, () => {
      const e = lspci(rootOf(argv));
      process.stdout.write(argv.json ? `${JSON.stringify(e, null, 2)}\n` : lspciText(e));
    }))
    .command('device <bdf>', 'one PCI function: its regions; --dump -o FILE writes its raw state (config space, registers, on-device memory) as the hardware presents it', (y) => y.epilogue(cliExitHelp('machine', 'device'))
      .positional('bdf', { type: 'string', describe: 'PCI address, e.g. 0000:02:00.4' })
      .option('dump', { type: 'boolean', default: false, describe: 'write the device image (see the README for its layout)' })
      .option('o', { alias: 'output', type: 'string', describe: 'output file for --dump (0600, replaced whole)' }),
    (argv) => held(argv, () => {
      if (argv.dump) {
        if (!argv.o) throw new UsageError('device --dump needs -o FILE');
        const r = deviceDumpTo(rootOf(argv), argv.bdf!, argv.o);
        process.stdout.write(`${argv.o}: ${r.bytes} bytes\n`);
      } else {
        if (argv.o !== undefined) throw new UsageError('-o goes with --dump');
        process.stdout.write(deviceText(rootOf(argv), argv.bdf!));
      }
    }))
    .command('export-vmcore', 'write an ELF vmcore of live RAM (for crash, makedumpfile, vmcore-dmesg, gdb)', (y) => y.epilogue(cliExitHelp('machine', 'export-vmcore'))
      .option('o', { alias: 'output', type: 'string', demandOption: true, describe: 'output file (0600, replaced whole; never a file of the machine)' }),
    (argv) => held(argv, async () => {
      const { exportLiveVmcore } = await dumpLayer();
      const sys = openSystem(rootOf(argv), { readOnly: true });
      const bar = progressBar('export-vmcore');
      try {
        const r = exportLiveVmcore(sys, argv.o, bar);
        bar.end();
        process.stdout.write(`${argv.o}: ${r.bytes} bytes\n`);
      } finally {
        closeSystem(sys);
      }
    }))
    .command('panic [message]', 'panic the kernel: with fadump registered the firmware copies boot memory and restarts into the capture boot; with a panic kernel loaded kdump boots it; else the notifiers (stage 1 of the dump: the pages of a GZIP dump kept as LZ4 until the writeout, LKCD_PANIC_CODEC=gzip deflates them at panic; device coredumps), kmsg dump to pstore, then kexec (or a firmware restart: warm with reboot=warm, else cold; a cold one loses the dump: exit 6)', (y) => y.epilogue(cliExitHelp('machine', 'panic'))
      .positional('message', { type: 'string', default: 'panic requested from the console' }),
    (argv) => held(argv, () => crashAndReport(rootOf(argv), { kind: 'panic', message: argv.message! })))
    .command('oops', 'inject an oops in the simulated driver (panic_on_oops): like a real driver bug', (y) => y.epilogue(cliExitHelp('machine', 'oops'))
      .option('panic', { type: 'boolean', default: true, describe: 'panic_on_oops; --no-panic: the kernel kills the task and runs on' }),
    (argv) => held(argv, async () => {
      if (argv.panic) { await crashAndReport(rootOf(argv), { kind: 'oops' }); return; }
      const sys = openSystem(rootOf(argv));
      try {
        const zone = kernelOops(sys.kernel);
        sys.ram.flush();
        process.stdout.write(`oops: the kernel survived (panic_on_oops=0)${zone === null ? '' : `; pstore saved the oops in ramoops dmesg zone ${zone}`}\n`);
      } finally {
        closeSystem(sys);
      }
    }))
    .command('sysrq <key>', 'Alt+SysRq: c crashes the kernel, d saves a dump in memory and keeps running', (y) => y.epilogue(cliExitHelp('machine', 'sysrq'))
      .positional('key', { type: 'string', choices: ['c', 'd'] }),
    (argv) => held(argv, async () => {
      if (argv.key === 'c') { await crashAndReport(rootOf(argv), { kind: 'sysrq-c' }); return; }
      const dump = await dumpLayer();
      const { liveDump } = dump;
      checkPanicCodec(dump);
      const sys = openSystem(rootOf(argv));
      try {
        const r = liveDump(sys);
        for (const l of r.console) process.stdout.write(`${l}\n`);
      } finally {
        closeSystem(sys);
      }
    }))
    .command('reset', 'the reset button: RAM is lost, the same kernel command line boots again', (y) => y.epilogue(cliExitHelp('machine', 'reset')), (argv) => held(argv, async () => {
      const { coldReset } = await dumpLayer();
      const sys = coldReset(openSystem(rootOf(argv)));
      try {
        process.stdout.write(`reset: ${sys.kernel.release} booted on cleared memory\n`);
      } finally {
        closeSystem(sys);
      }
    }))
    .command('reboot', 'reboot through the firmware: reboot=warm on the command line keeps RAM (and the ramoops records), else a cold boot clears it', (y) => y.epilogue(cliExitHelp('machine', 'reboot')), (argv) => held(argv, async () => {
      const { requestedReboot } = await dumpLayer();
      const r = requestedReboot(openSystem(rootOf(argv)));
      try {
        process.stdout.write(`reboot: ${r.mode} reboot: ${r.system.kernel.release} booted${r.mode === 'warm' ? '; memory was kept' : ' on cleared memory'}\n`);
      } finally {
        closeSystem(r.system);
      }
    }))
    .command('sys <action> [path] [value]', 'the running kernel\'s /sys: ls [PATH], cat PATH, rm PATH (pstore files), write PATH VALUE (e.g. kernel/fadump/registered 1, kernel/fadump/release_mem 1), export DIR [PATH] (real files, default fs/pstore); kernel/crashdd/<driver>/<dump> in a crash recovery kernel', (y) => y.epilogue(cliExitHelp('machine', 'sys'))
      .positional('action', { type: 'string', choices: ['ls', 'cat', 'rm', 'write', 'export'] })
      .positional('path', { type: 'string' })
      .positional('value', { type: 'string' }),
    (argv) => held(argv, () => {
      runSys(rootOf(argv), argv.action!, argv.path, argv.value, (s) => { process.stdout.write(s); });
    }))
    .command('proc <path>', `read a /proc or /sys file of the running kernel (${PROC_FILES})`, (y) => y.epilogue(cliExitHelp('machine', 'proc'))
      .positional('path', { type: 'string' })
      .option('o', { alias: 'output', type: 'string', describe: 'copy the file here (required for vmcore: streamed, zero pages left as holes, mode 0600)' }),
    (argv) => held(argv, async () => {
      const dump = await dumpLayer();
      const sys = openSystem(rootOf(argv), { readOnly: true });
      try {
        const clean = argv.path!.replace(/^\/?(proc\/)?/, '');
        if (clean === 'vmcore' && argv.o !== undefined) {
          if (argv.o === '') throw new UsageError('-o needs a file name');
          const bar = progressBar('vmcore');
          const r = dump.copyProcVmcore(sys.kernel, argv.o, bar);
          bar.end();
          process.stdout.write(`${argv.o}: ${r.bytes} bytes\n`);
        } else if (argv.o !== undefined) {
          throw new UsageError('-o goes with vmcore');
        } else {
          process.stdout.write(`${procRead(sys, argv.path!, dump)}\n`);
        }
      } finally {
        closeSystem(sys);
      }
    }))
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .fail((msg, err) => { if (err) throw err; throw usageFailure('machine', msg, COMMANDS, hideBin(process.argv)); })
    .epilogue(cliExitHelp('machine'))
    .help()
    .version(versionText('machine'))
    .parseAsync();
});
