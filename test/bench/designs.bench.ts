/**
 * Three full-dump designs side by side on the same machine, seed and
 * workload (profile database, seed 1, 10 simulated seconds), at 256 MiB
 * and 1 GiB (DESIGNS_SIZES narrows it, e.g. DESIGNS_SIZES=256M):
 *
 *   lkcd    LKCD soft boot: `lkcd config` arms (config block, bootstrap
 *           pages, buffer, kexec -l of the next kernel); the default
 *           etc/sysconfig/dump (all RAM, GZIP per page).
 *   kdump   crashkernel=32M, `kdumpctl start` (kexec -p); kdump-utils'
 *           default core collector (makedumpfile -l or -c, -d 31).
 *   fadump  fadump=on (boot memory by the scaled 2011 rule), `kdumpctl
 *           start` (registers); the same core collector.
 *
 * Each a child process, wall time and peak RSS (GNU time -v, children
 * included: makedumpfile counts in kdumpctl save's figure):
 *   memory reserved while healthy: the boot-time reservation (crashkernel
 *     region, fadump's area; none for LKCD) plus the frames arming took
 *     (free frames of `machine status` before and after the arming command);
 *   pages saved: the dump's own count (LKCD's index; makedumpfile's header,
 *     read by our kdump-compressed reader);
 *   dump size: the saved file (dump.N, vmcore);
 *   panic to a saved file: `machine panic` through the command that leaves
 *     the file in place (lkcd config + lkcd save; kdumpctl save, with
 *     final_action poweroff so no reboot is timed);
 *   peak RSS: the largest of those commands.
 *
 * No target: the figures are reported. A design whose flow fails fails the run.
 */
import fs from 'node:fs';
import path from 'node:path';
import { defaultCmdline, configForRam } from '../../src/kernel/index.js';
import { kdumpCompressedFormat, openDump } from '../../src/dump/index.js';
import { defaultCoreCollector, makedumpfileHasLzo } from '../../kexec/kdump_conf.js';
import { KDUMP_FLOW_CRASHKERNEL } from '../../lkcd/designs.js';
import { formatTable, type Benchmark, type BenchContext, type BenchOutcome } from './lib/bench.js';
import { measureNode, requireSuccess, rssMethod, timeCommand, type NodeMeasurement } from './lib/measure.js';

const MiB = 1 << 20;
const PAGE_SIZE = 4096;
const DEFAULT_SIZES = ['256M', '1G'];
const PROFILE = 'database';
const SEED = 1;
const SECONDS = 10;
const MESSAGE = 'bench';
const DESIGNS = ['lkcd', 'kdump', 'fadump'] as const;
type Design = typeof DESIGNS[number];

interface Row {
  size: string;
  design: Design;
  kept: string;
  bootReservedBytes: number;
  armedBytes: number;
  reservedBytes: number;
  pagesSaved: number;
  dumpBytes: number;
  steps: Array<{ command: string; seconds: number; peakRssMiB: number }>;
  panicToSavedSeconds: number;
  peakRssMiB: number;
}

function parseSize(label: string): number {
  const m = /^(\d+)([MG])$/.exec(label);
  if (!m) throw new Error(`DESIGNS_SIZES: '${label}' is not a size like 256M or 1G`);
  return Number(m[1]) * (m[2] === 'G' ? 1024 : 1) * MiB;
}

function freeFrames(ctx: BenchContext, root: string): number {
  const r = requireSuccess(timeCommand(process.execPath, [ctx.machineJs, '--root', root, 'status', '--json']));
  return (JSON.parse(r.stdout) as { pages: { free: number } }).pages.free;
}

async function runDesign(ctx: BenchContext, size: string, design: Design): Promise<Row> {
  const bytes = parseSize(size);
  const root = ctx.tempDir(`designs-${design}-${size}`);
  const machine = (args: string[]): string[] => [ctx.machineJs, '--root', root, ...args];
  const lkcdJs = path.join(ctx.repo, 'dist', 'lkcd', 'main.js');
  const kdumpctlJs = path.join(ctx.repo, 'dist', 'kexec', 'kdumpctl.js');
  const base = defaultCmdline(configForRam(BigInt(bytes)).release);
  const cmdline = design === 'kdump' ? `${base} crashkernel=${KDUMP_FLOW_CRASHKERNEL}` : design === 'fadump' ? `${base} fadump=on` : base;
  ctx.progress(`${size} ${design}: power-on`);
  requireSuccess(timeCommand(process.execPath, machine(['power-on', '--mem', size, '--profile', PROFILE, '--seed', String(SEED), '--cmdline', cmdline])));
  if (design !== 'lkcd') {
    // kdump-utils' defaults, but final_action poweroff: the time to the saved file, not the reboot after it.
    const conf = path.join(root, 'etc', 'kdump.conf');
    fs.mkdirSync(path.dirname(conf), { recursive: true });
    fs.writeFileSync(conf, `path /var/crash\ncore_collector ${defaultCoreCollector(makedumpfileHasLzo())}\nfinal_action poweroff\n`);
  }
  const free0 = freeFrames(ctx, root);
  ctx.progress(`${size} ${design}: arm`);
  requireSuccess(design === 'lkcd' ? timeCommand(process.execPath, [lkcdJs, '--root', root, 'config']) : timeCommand(process.execPath, [kdumpctlJs, '--root', root, 'start']));
  const free1 = freeFrames(ctx, root);
  let bootReservedBytes = 0;
  if (design === 'kdump') bootReservedBytes = Number(requireSuccess(timeCommand(process.execPath, machine(['proc', 'sys/kernel/kexec_crash_size']))).stdout.trim());
  if (design === 'fadump') bootReservedBytes = Number(requireSuccess(timeCommand(process.execPath, machine(['sys', 'cat', 'kernel/fadump/mem_reserved']))).stdout.trim());
  requireSuccess(timeCommand(process.execPath, machine(['run', '--seconds', String(SECONDS)])));

  const steps: Array<{ command: string; m: NodeMeasurement }> = [];
  const measure = (label: string, script: string, args: string[]): void => {
    ctx.progress(`${size} ${design}: ${label}`);
    steps.push({ command: label, m: requireSuccess(measureNode(script, args)) });
  };
  measure('machine panic', ctx.machineJs, ['--root', root, 'panic', MESSAGE]);
  let pagesSaved: number;
  let dumpBytes: number;
  let kept: string;
  if (design === 'lkcd') {
    measure('lkcd config', lkcdJs, ['--root', root, 'config']);
    measure('lkcd save', lkcdJs, ['--root', root, 'save']);
    const list = JSON.parse(requireSuccess(timeCommand(process.execPath, [lkcdJs, '--root', root, 'list', '--json'])).stdout) as Array<{ n: number; dir: string; pages: number; level: number }>;
    const d = list[list.length - 1];
    pagesSaved = d.pages;
    dumpBytes = fs.statSync(path.join(d.dir, `dump.${d.n}`)).size;
    kept = `level ${d.level}${d.level & 8 ? ' (all RAM)' : ''}, GZIP/page`;
  } else {
    measure('kdumpctl save', kdumpctlJs, ['--root', root, 'save']);
    const saved = /^kdumpctl: saved (\S+)\/vmcore \(design (\w+)\)$/m.exec(steps[steps.length - 1].m.stdout);
    if (!saved || saved[2] !== design) throw new Error(`kdumpctl save did not report a ${design} vmcore: ${steps[steps.length - 1].m.stdout.slice(-300)}`);
    const file = path.join(root, saved[1], 'vmcore');
    const dump = openDump(file, {}, [kdumpCompressedFormat]);
    try {
      pagesSaved = Number(dump.attrs['dump.pages']);
      kept = `-d ${dump.attrs['dump.level']}, ${dump.attrs['dump.compression']}`;
    } finally {
      dump.close();
    }
    dumpBytes = fs.statSync(file).size;
  }
  const rss = (m: NodeMeasurement): number => m.peakRssKiB / 1024;
  return {
    size, design, kept, bootReservedBytes, armedBytes: (free0 - free1) * PAGE_SIZE,
    reservedBytes: bootReservedBytes + (free0 - free1) * PAGE_SIZE,
    pagesSaved, dumpBytes,
    steps: steps.map((s) => ({ command: s.command, seconds: s.m.wallSeconds, peakRssMiB: rss(s.m) })),
    panicToSavedSeconds: steps.reduce((t, s) => t + s.m.wallSeconds, 0),
    peakRssMiB: Math.max(...steps.map((s) => rss(s.m))),
  };
}

const bench: Benchmark = {
  name: 'designs',
  description: 'LKCD soft boot, kdump and fadump on the same machine, seed and workload: reservation, pages, size, panic to saved file, peak RSS',
  async run(ctx: BenchContext): Promise<BenchOutcome> {
    const sizes = (process.env.DESIGNS_SIZES ?? DEFAULT_SIZES.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
    const rows: Row[] = [];
    for (const size of sizes) {
      for (const design of DESIGNS) rows.push(await runDesign(ctx, size, design));
    }
    const mib = (b: number): string => `${(b / MiB).toFixed(1)} MiB`;
    process.stdout.write(formatTable(
      ['RAM', 'design', 'reserved while healthy', 'kept', 'pages saved', 'dump size', 'panic to saved file', 'peak RSS'],
      rows.map((r) => [
        r.size, r.design, mib(r.reservedBytes), r.kept, String(r.pagesSaved), mib(r.dumpBytes), `${r.panicToSavedSeconds.toFixed(1)} s`, `${r.peakRssMiB.toFixed(0)} MiB`,
      ]),
    ));
    process.stdout.write(`\nprofile ${PROFILE}, seed ${SEED}, ${SECONDS} s of workload; peak RSS by ${rssMethod()}; steps:\n`);
    for (const r of rows) process.stdout.write(`  ${r.size} ${r.design}: ${r.steps.map((s) => `${s.command} ${s.seconds.toFixed(1)} s / ${s.peakRssMiB.toFixed(0)} MiB`).join(', ')}; reserved = ${mib(r.bootReservedBytes)} at boot + ${mib(r.armedBytes)} armed\n`);
    const out = ctx.writeResults('designs.json', rows);
    process.stdout.write(`results: ${out}\n`);
    return { pass: true };
  },
};

export default bench;
