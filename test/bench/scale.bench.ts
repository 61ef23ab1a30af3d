/**
 * The whole pipeline at growing RAM sizes (issue 10, targets 3 and 5):
 * every command's wall time, CPU seconds and peak RSS on one machine per
 * size (profile database, seed 1, the default etc/sysconfig/dump: all RAM,
 * GZIP), and how each grows with RAM.
 *
 * Per size, each a child process: `machine power-on`, `lkcd config` (arm
 * and preload kexec), `machine panic` (stage 1 and the kexec boot), `lkcd
 * config` (the writeout), `lkcd save`, `lkcd verify 0`, and up to
 * SCALE_EXPORT_MAX (default 4G) `lkcd export 0 --elf` (its output is the
 * size of RAM).
 *
 * Baseline, same run, same bytes: `zstd -1 -T1` of the RAM image just
 * before the panic (the bytes stage 1 compresses; to /dev/null), its time
 * and peak RSS, and `cp` of dump.N then `sync`. The pipeline (panic +
 * writeout + save) is given against zstd's time.
 *
 * Target: every command's peak RSS <= 128 MiB (FAIL otherwise).
 * SCALE_SIZES narrows or widens the sizes (e.g. `1G,4G,16G`).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatTable, type Benchmark, type BenchContext, type BenchOutcome } from './lib/bench.js';
import { measureCommand, requireOk } from './lib/measure-command.js';
import { measureNode, requireSuccess, timeCommand, type NodeMeasurement } from './lib/measure.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const PROFILE = 'database';
const SEED = 1;
const RSS_TARGET_MIB = 128;
const STEPS = ['power-on', 'config (arm)', 'panic', 'config (writeout)', 'save', 'verify', 'export --elf'] as const;
type Step = (typeof STEPS)[number];

function parseSize(label: string): number {
  const m = /^(\d+)([MG])$/.exec(label.trim());
  if (!m) throw new Error(`SCALE_SIZES: '${label}' is not a size like 1G or 512M`);
  return Number(m[1]) * (m[2] === 'G' ? GiB : MiB);
}

interface StepFigures { wall: number; cpu: number | null; rssMiB: number }
interface Row {
  size: string;
  bytes: number;
  steps: Partial<Record<Step, StepFigures>>;
  dumpBytes: number;
  zstd: { wall: number; cpu: number; rssMiB: number };
  cpDump: number;
}

function figures(m: NodeMeasurement): StepFigures {
  return { wall: m.wallSeconds, cpu: m.cpuSeconds, rssMiB: m.peakRssKiB / 1024 };
}

function measureSize(ctx: BenchContext, label: string, exportMax: number): Row {
  const bytes = parseSize(label);
  const dir = ctx.tempDir(`scale-${label}`);
  try {
    const root = path.join(dir, 'root');
    const env = { ...process.env, LKCD_NO_PROGRESS: '1' };
    const opts = { cwd: ctx.repo, env };
    const lkcdJs = path.join(ctx.repo, 'dist', 'lkcd', 'main.js');
    const r = ['--root', root];
    const steps: Row['steps'] = {};
    const step = (name: Step, script: string, args: string[]): NodeMeasurement => {
      ctx.progress(`${label}: ${name}`);
      const m = requireSuccess(measureNode(script, args, opts));
      steps[name] = figures(m);
      return m;
    };
    step('power-on', ctx.machineJs, ['power-on', ...r, '--mem', label, '--profile', PROFILE, '--seed', String(SEED)]);
    step('config (arm)', lkcdJs, ['config', ...r]);
    ctx.progress(`${label}: zstd -1 -T1 of the RAM image`);
    const ram = path.join(root, 'lib', 'machine', 'ram');
    const z = requireOk(measureCommand('bash', ['-c', 'zstd -1 -T1 -q -c "$1" > /dev/null', 'bash', ram]));
    step('panic', ctx.machineJs, ['panic', ...r, 'bench']);
    step('config (writeout)', lkcdJs, ['config', ...r]);
    step('save', lkcdJs, ['save', ...r]);
    const dumpN = path.join(root, 'log', 'dump', '0', 'dump.0');
    const dumpBytes = fs.statSync(dumpN).size;
    step('verify', lkcdJs, ['verify', '0', ...r]);
    if (bytes <= exportMax) {
      const out = path.join(root, 'vmcore.elf');
      step('export --elf', lkcdJs, ['export', '0', '--elf', '-o', out, ...r]);
      fs.rmSync(out, { force: true });
    }
    ctx.progress(`${label}: cp + sync of dump.0`);
    const copy = path.join(dir, 'dump.copy');
    const cp = requireSuccess(timeCommand('bash', ['-c', 'cp "$1" "$2" && sync "$2"', 'bash', dumpN, copy]));
    fs.rmSync(copy, { force: true });
    return {
      size: label, bytes, steps, dumpBytes, cpDump: cp.wallSeconds,
      zstd: { wall: z.wallSeconds, cpu: z.userSeconds + z.systemSeconds, rssMiB: z.peakRssKiB / 1024 },
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const benchmark: Benchmark = {
  name: 'scale',
  description: `the whole pipeline per RAM size (SCALE_SIZES, default 1G,4G): wall, CPU and peak RSS of every command, profile ${PROFILE} seed ${SEED}; ` +
    'baselines zstd -1 -T1 of the RAM image and cp of dump.N',
  run(ctx: BenchContext): BenchOutcome {
    const labels = (process.env.SCALE_SIZES ?? '1G,4G').split(',').map((s) => s.trim()).filter(Boolean);
    const exportMax = parseSize(process.env.SCALE_EXPORT_MAX ?? '4G');
    const rows = labels.map((l) => measureSize(ctx, l, exportMax));
    const cell = (f: StepFigures | undefined): string => (f ? `${f.wall.toFixed(1)} s, ${f.cpu === null ? '-' : f.cpu.toFixed(1)} CPU, ${f.rssMiB.toFixed(0)} MiB` : '-');
    process.stdout.write(`each command: wall s, CPU s (user + system), peak RSS; target peak RSS <= ${RSS_TARGET_MIB} MiB; load average at the end ` +
      `${os.loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
    process.stdout.write(formatTable(['command', ...rows.map((r) => r.size)], STEPS.map((s) => [s, ...rows.map((r) => cell(r.steps[s]))])));
    const pipeline = (r: Row): number => (['panic', 'config (writeout)', 'save'] as const).reduce((a, s) => a + (r.steps[s]?.wall ?? 0), 0);
    process.stdout.write('\npipeline = panic + writeout + save; baseline zstd -1 -T1 of the same RAM image (time, peak RSS) and cp + sync of dump.0\n');
    process.stdout.write(formatTable(
      ['RAM', 'pipeline s', 'zstd -1 s', 'pipeline/zstd', 'stage 1/zstd', 'dump.0 MB', 'cp dump.0 s', 'save/cp', 'zstd peak RSS MiB', 'our largest peak RSS MiB'],
      rows.map((r) => [
        r.size, pipeline(r).toFixed(1), r.zstd.wall.toFixed(2), `${(pipeline(r) / r.zstd.wall).toFixed(2)}x`,
        `${((r.steps.panic?.wall ?? 0) / r.zstd.wall).toFixed(2)}x`, (r.dumpBytes / 1e6).toFixed(0), r.cpDump.toFixed(2),
        `${(r.cpDump / (r.steps.save?.wall ?? 1)).toFixed(2)}x`, r.zstd.rssMiB.toFixed(0),
        Math.max(...Object.values(r.steps).map((f) => f.rssMiB)).toFixed(0),
      ]),
    ));
    if (rows.length > 1) {
      const base = rows[0];
      process.stdout.write(`\ngrowth against ${base.size} (RAM ${'x'}): wall time and peak RSS of each command\n`);
      process.stdout.write(formatTable(['command', ...rows.slice(1).map((r) => `${r.size} (RAM x${(r.bytes / base.bytes).toFixed(0)})`)],
        STEPS.map((s) => [s, ...rows.slice(1).map((r) => {
          const a = base.steps[s];
          const b = r.steps[s];
          return a && b ? `time x${(b.wall / a.wall).toFixed(1)}, RSS x${(b.rssMiB / a.rssMiB).toFixed(2)}` : '-';
        })])));
    }
    const over = rows.flatMap((r) => Object.entries(r.steps).filter(([, f]) => f.rssMiB > RSS_TARGET_MIB).map(([s, f]) => `${r.size} ${s} ${f.rssMiB.toFixed(0)} MiB`));
    process.stdout.write(over.length ? `peak RSS over ${RSS_TARGET_MIB} MiB: ${over.join('; ')}: FAIL\n` : `every command at or under ${RSS_TARGET_MIB} MiB: PASS\n`);
    const file = ctx.writeResults('scale.json', {
      benchmark: 'scale', date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model,
      profile: PROFILE, seed: SEED, rssTargetMiB: RSS_TARGET_MIB, rows,
    });
    process.stdout.write(`results: ${file}\n`);
    return { pass: over.length === 0 };
  },
};

export default benchmark;
