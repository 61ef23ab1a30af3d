#!/usr/bin/env node
import '../src/cli/heap.js'; // first: bounds V8's young generation (see heap.ts)
import fs from 'node:fs';
import path from 'node:path';
import yargs from 'yargs';
import { versionText } from '../src/cli/usage.js';
import { hideBin } from 'yargs/helpers';
import { formatSize, parseInteger, parseSize, UsageError } from '../src/codec/index.js';
import { ensureDir, MachineRoot, resolveRoot, writeOutputFile } from '../src/machine/index.js';
import {
  closeSystem, configForRam, defaultCmdline, defaultPstoreParams, openSystem, powerOn, PROFILE_NAMES, runWorkload,
} from '../src/kernel/index.js';
import { crashMachine, liveDump, type Stage1Result } from '../src/dump/index.js';
import { progressBar } from '../src/cli/progress.js';
import { runCli } from '../src/cli/run.js';
import { cliExitHelp } from '../src/cli/exit.js';
import { holdMachine } from '../src/cli/hold.js';
import { DumpIndex } from '../src/store/index.js';
import { lkcdConfig } from './config.js';
import { lkcdSave } from './save.js';
import { dumpDirFor, openIndexedDump, sysconfigFor } from './query.js';
import { buildDumpMap, dumpMapSvg } from './map.js';
import { lkcdProtected } from './sysconfig.js';
import { lkcdPstoreSave, type PstoreSaveReport } from './pstore.js';
import { DESIGNS, runDesignFlow, type Design, type DesignFlowResult } from './designs.js';

interface Step { name: string; seconds: number }

/** Where the text of a summary item starts ("  saved     "): continuation lines are indented as far. */
const SUMMARY_INDENT = 12;

/** Runs one step, timing it, and says what it is doing when stdout is a terminal. */
function step<T>(steps: Step[], name: string, fn: () => T): T {
  if (process.stderr.isTTY) process.stderr.write(`  ${name} ...\n`);
  const t0 = performance.now();
  const r = fn();
  steps.push({ name, seconds: (performance.now() - t0) / 1000 });
  return r;
}

/**
 * `npm start`: the whole pipeline on the default machine under var/ —
 * power on, arm the dump, run the workload, panic (or Alt+SysRq+d), soft
 * boot with crashdump=, write the dump out, save it — then a summary.
 * `--design kdump` and `--design fadump` run those designs' flows instead
 * (lkcd/designs.ts), with the same kind of summary.
 */
await runCli('start', async () => {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('npm start --')
    .usage('$0 [options]\n\nThe whole LKCD soft-boot crash-dump pipeline on the simulated machine under var/ (or --root):\npower on, lkcd config, workload, panic, kexec soft boot with crashdump=, lkcd config (writeout), lkcd save\n(and with --pstore, lkcd pstore save of the ramoops records the panic left).\nRun it again and the next dump lands beside the first.\n\n--design kdump: power on with crashkernel=32M, kdumpctl start (kexec -p), workload, panic (the capture kernel\nboots in the region), kdumpctl save (vmcore-dmesg, the real makedumpfile, final action reboot).\n--design fadump: power on with fadump=on, kdumpctl start (registers fadump with the firmware), workload, panic\n(the firmware copies boot memory and restarts; the capture boot exports /proc/vmcore), kdumpctl save.')
    .option('root', { type: 'string', describe: 'machine root (default: $LKCD_ROOT, else var/ of the checkout)' })
    .option('design', { type: 'string', choices: DESIGNS as string[], default: 'lkcd', describe: 'which crash-dump design runs: LKCD soft boot, kdump or fadump' })
    .option('mem', { type: 'string', default: '1G', describe: 'RAM size, 16M to 16G' })
    .option('profile', { type: 'string', default: 'database', describe: `workload: ${PROFILE_NAMES.join(', ')}` })
    .option('seed', { type: 'string', default: '1', describe: 'workload seed (same seed, same memory)' })
    .option('seconds', { type: 'string', default: '10', describe: 'simulated seconds of workload before the crash' })
    .option('live', { type: 'boolean', default: false, describe: 'Alt+SysRq+d (a live dump, no crash) instead of a panic' })
    .option('message', { type: 'string', default: 'Fatal exception in interrupt', describe: 'the panic string' })
    .option('pstore', { type: 'boolean', default: false, describe: 'also keep the panic log, the console and a device coredump in a ramoops region (pstore), archived by lkcd pstore save and linked to the dump' })
    .option('debug', { type: 'boolean', describe: 'stack traces on errors' })
    .strict()
    .fail((msg, err) => { if (err) throw err; throw new UsageError(msg); })
    .epilogue(cliExitHelp('start'))
    .help().version(versionText('npm start'))
    .parseAsync();
  const root = new MachineRoot(resolveRoot(argv.root));
  const mem = parseSize(argv.mem, '--mem');
  const seed = parseInteger(argv.seed, '--seed');
  const seconds = parseInteger(argv.seconds, '--seconds');
  const steps: Step[] = [];
  const out = (s = ''): void => { process.stdout.write(`${s}\n`); };
  const design = argv.design as Design;
  if (design !== 'lkcd') {
    if (argv.live || argv.pstore) throw new UsageError(`--${argv.live ? 'live' : 'pstore'} goes with --design lkcd`);
    const r = await holdMachine(root, 'start', () => runDesignFlow(root, design, {
      mem, profile: argv.profile, seed, seconds, message: argv.message, onNote: (l) => process.stderr.write(`start: ${l}\n`),
    }, (name, fn) => step(steps, name, fn)), { prepare: true });
    designSummary(r, root, mem, argv.message, steps, argv.root !== undefined, out);
    return;
  }

  // The whole pipeline is one command on the machine: no other command slips in between its steps.
  const { armed, dump, crashed, writeout, saved, pstore } = await holdMachine(root, 'start', () => {
    // --pstore: a ramoops region reserved with memmap= (and reboot=warm); lkcd config passes it on to the kexec kernel.
    const cmdline = argv.pstore ? `${defaultCmdline(configForRam(mem).release)} ${defaultPstoreParams(mem)}` : undefined;
    step(steps, `power on (${formatSize(mem)}, ${argv.profile}, seed ${seed}${argv.pstore ? ', ramoops' : ''})`, () => closeSystem(powerOn(root, { mem, profile: argv.profile, seed, cmdline, onNote: (l) => process.stderr.write(`start: ${l}\n`) })));
    const armed = step(steps, 'lkcd config (arm, kexec -l)', () => lkcdConfig(root));
    step(steps, `workload runs ${seconds} s`, () => {
      const sys = openSystem(root);
      try { runWorkload(sys, seconds); } finally { closeSystem(sys); }
    });
    let dump: Stage1Result | null = null;
    let crashed = '';
    if (argv.live) {
      dump = step(steps, 'Alt+SysRq+d: stage 1 (live)', () => {
        const sys = openSystem(root);
        try { return liveDump(sys).dump; } finally { closeSystem(sys); }
      });
      crashed = 'nothing: Alt+SysRq+d took a live dump, the system kept running';
    } else {
      dump = step(steps, 'panic: stage 1 + kexec soft boot', () => {
        const sys = openSystem(root);
        const bar = progressBar('dump: stage 1');
        let o;
        try {
          o = crashMachine(sys, { kind: 'panic', message: argv.message }, { onStage1Progress: bar });
        } finally { bar.end(); }
        closeSystem(o.system);
        if (o.after !== 'kexec') throw new UsageError(`the panic ended in a ${o.after}, not a soft boot: ${o.console.join('; ')}`);
        return o.dump;
      });
      crashed = `Kernel panic - not syncing: ${argv.message}`;
    }
    const writeout = step(steps, 'lkcd config (writeout to DUMPDEV, re-arm)', () => lkcdConfig(root));
    const saved = step(steps, 'lkcd save', () => lkcdSave(root));
    if (saved.n === null) throw new UsageError(`lkcd save saved nothing: ${saved.lines.join('; ')}`);
    const pstore: PstoreSaveReport | null = argv.pstore ? step(steps, 'lkcd pstore save', () => lkcdPstoreSave(root)) : null;
    return { armed, dump, crashed, writeout, saved: { ...saved, n: saved.n }, pstore };
  }, { prepare: true });

  const dumpdir = dumpDirFor(root);
  const index = DumpIndex.open(dumpdir, { readonly: true });
  const rec = index.getDump(saved.n);
  index.close();
  if (!rec || !dump) throw new UsageError('the saved dump is not in the index');
  const mapFile = writeDumpMap(root, rec.n);
  const total = steps.reduce((a, s) => a + s.seconds, 0);
  const w = Math.max(...steps.map((s) => s.name.length));
  for (const l of fold('', `lkcd-softboot: the crash-dump pipeline on a ${formatSize(mem)} machine under ${root.dir}`, 80, SUMMARY_INDENT)) out(l);
  out();
  for (const s of steps) out(`  ${s.name.padEnd(w)}  ${s.seconds.toFixed(1).padStart(6)} s`);
  out(`  ${'total'.padEnd(w)}  ${total.toFixed(1).padStart(6)} s`);
  out();
  const p = dump.passes;
  const mib = (b: number): string => `${(b / (1 << 20)).toFixed(1)} MiB`;
  // Lines are folded at 80 columns, the continuation indented under the text.
  const item = (label: string, text: string): void => { for (const l of fold(`  ${label.padEnd(8)}  `, text)) out(l); };
  item('crashed', crashed);
  item('saved', `${rec.pages} pages (kern ${p.kern.saved}, user ${p.user.saved}, unused ${p.unused.saved}); ${rec.pages_compressed} compressed with ${['no compression', 'RLE', 'GZIP'][rec.compress]}, ${rec.pages - rec.pages_compressed} raw, in place in ${dump.framesUsed} spare frames of RAM (${dump.metadataFrames} of them metadata), in ${dump.seconds.toFixed(1)} s`);
  item('dump', `${mib(rec.stored_bytes)} for ${mib(rec.raw_bytes)} of memory: ratio ${(rec.raw_bytes / rec.stored_bytes).toFixed(2)}; ${rec.complete ? 'complete' : `TRUNCATED, ${rec.missing_pages} pages missing`}`);
  const vmlinux = path.join(rec.dir, `vmlinux.${rec.n}`);
  const hasVmlinux = fs.existsSync(vmlinux);
  item('files', `${path.join(rec.dir, `dump.${rec.n}`)} (+ map.${rec.n}, kerntypes.${rec.n}, analysis.${rec.n}${hasVmlinux ? `, vmlinux.${rec.n}` : ''}), indexed in ${dumpdir}`);
  item('map', mapFile);
  for (const l of [...armed.lines.slice(0, 1), ...writeout.lines.slice(0, 1)]) item('log', l);
  for (const l of pstore?.lines ?? []) item('pstore', l.replace(/^lkcd pstore save: /, ''));
  out();
  out('Next:');
  const r = argv.root ? ` --root ${root.dir}` : '';
  out(`  npx lkcd${r} list`);
  out(`  npx lkcd${r} analyze ${rec.n}`);
  for (const l of foldCommand(`npx lkcd${r} export ${rec.n} --elf -o /tmp/vmcore-${rec.n} && crash --log /tmp/vmcore-${rec.n}`)) out(l);
  out(`  npx lkcd${r} map ${rec.n} --text`);
  if (hasVmlinux) for (const l of foldCommand(`gdb -batch -ex 'p init_uts_ns.name.release' -ex 'p jiffies' ${vmlinux} /tmp/vmcore-${rec.n}`)) out(l);
  if (pstore) out(`  npx lkcd${r} pstore list; npx lkcd${r} search 'not syncing'`);
});

/** Folds `text` after `prefix` at 80 columns, at spaces; continuation lines are indented `indent` (the prefix's width). */
export function fold(prefix: string, text: string, width = 80, indent = prefix.length): string[] {
  const lines: string[] = [];
  let line = prefix;
  let empty = true;
  for (const word of text.split(' ')) {
    if (!empty && line.length + 1 + word.length > width) {
      lines.push(line);
      line = ' '.repeat(indent);
      empty = true;
    }
    line += empty ? word : ` ${word}`;
    empty = false;
  }
  lines.push(line);
  return lines;
}

/**
 * One summary line folded at 80 columns: an item ("  label     text") under its text, the title
 * and other lines under the items' text too.
 */
function foldSummaryLine(line: string): string[] {
  if (line.length <= 80) return [line];
  const item = /^( {2}[a-z]+ +)(?=\S)/.exec(line);
  if (item && item[1].length === SUMMARY_INDENT) return fold(item[1], line.slice(SUMMARY_INDENT));
  const lead = /^ */.exec(line)![0];
  return fold(lead, line.slice(lead.length), 80, SUMMARY_INDENT);
}

/** A shell command to copy: folded with a backslash at each line's end, so it still pastes as one. */
function foldCommand(cmd: string): string[] {
  const lines = fold('  ', cmd, 78);
  return lines.map((l, i) => (i < lines.length - 1 ? `${l} \\` : l)).map((l, i) => (i > 0 ? `  ${l}` : l));
}

/** lkcd map N -o ROOT/tmp/lkcd-map.N.svg: the picture of the dump just saved (the machine's /tmp). */
function writeDumpMap(root: MachineRoot, n: number): string {
  const conf = sysconfigFor(root);
  const dir = path.join(root.dir, 'tmp');
  ensureDir(dir, 0o700);
  const file = path.join(dir, `lkcd-map.${n}.svg`);
  const o = openIndexedDump(conf.DUMPDIR, n);
  const index = DumpIndex.open(conf.DUMPDIR, { readonly: true });
  try {
    const m = buildDumpMap(o, index);
    writeOutputFile(file, dumpMapSvg(m, `lkcd dump ${n}: ${o.rec.panic_string}`), lkcdProtected(root, conf));
  } finally { index.close(); o.close(); }
  return file;
}

/** The summary of a kdump or fadump flow, in the shape of the LKCD one. */
function designSummary(r: DesignFlowResult, root: MachineRoot, mem: bigint, message: string, steps: Step[], rootGiven: boolean, print: (s?: string) => void): void {
  const out = (line = ''): void => { for (const l of foldSummaryLine(line)) print(l); };
  const total = steps.reduce((a, s) => a + s.seconds, 0);
  const w = Math.max(...steps.map((s) => s.name.length));
  const mib = (b: number | bigint): string => `${(Number(b) / (1 << 20)).toFixed(1)} MiB`;
  out(`lkcd-softboot: the ${r.design} crash-dump flow on a ${formatSize(mem)} machine under ${root.dir}`);
  out();
  for (const s of steps) out(`  ${s.name.padEnd(w)}  ${s.seconds.toFixed(1).padStart(6)} s`);
  out(`  ${'total'.padEnd(w)}  ${total.toFixed(1).padStart(6)} s`);
  out();
  const v = r.vmcore;
  out(`  crashed   Kernel panic - not syncing: ${message}`);
  out(r.design === 'kdump'
    ? `  reserved  ${mib(r.reservedBytes)} while healthy: the crashkernel= region the capture kernel boots in`
    : `  reserved  ${mib(r.reservedBytes)} while healthy: fadump's area (CPU state, the copy of boot memory, the headers)`);
  out(`  saved     ${v.pages} pages of the ${v.memoryPages} below max_mapnr, by makedumpfile (dump level ${v.level}, ${v.compression}), design ${r.save.design}`);
  out(`  dump      ${mib(v.bytes)} for ${mib(v.memoryPages * 4096n)} of memory below max_mapnr: ratio ${(Number(v.memoryPages * 4096n) / v.bytes).toFixed(2)}`);
  out(`  files     ${v.file} and vmcore-dmesg.txt`);
  for (const l of [...r.armLines, ...r.crashLines.slice(-1), ...r.saveLines.filter((x) => /final action|booted/.test(x))]) out(`  log       ${l}`);
  out();
  out('Next:');
  const opt = rootGiven ? ` --root ${root.dir}` : '';
  out(`  crash --osrelease ${v.file}; vmcore-dmesg is in ${path.join(path.dirname(v.file), 'vmcore-dmesg.txt')}`);
  out(`  npx kdumpctl${opt} start   (arms the design again after the reboot, as kdump.service does at boot), then npx machine${opt} panic`);
  if (r.design === 'fadump') {
    out(`  in the capture boot, instead of kdumpctl save's reboot: npx machine${opt} proc vmcore -o /tmp/vmcore && npx machine${opt} sys write kernel/fadump/release_mem 1`);
  }
}
