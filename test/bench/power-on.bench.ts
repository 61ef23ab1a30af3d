/**
 * Cold power-on of 1 GiB and 4 GiB machines (profile database, seed 1).
 *
 * Ours: `machine power-on` as a child process, wall time and peak RSS.
 * Baseline, same run, same input: `cp --sparse=always` of the RAM image
 * that power-on just wrote, the least work that produces an identical file.
 * Target: peak RSS does not grow with RAM size (STYLE section 1: RAM goes
 * through a bounded cache, never one buffer of all of it).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatTable, type Benchmark, type BenchContext, type BenchOutcome } from './lib/bench.js';
import { measureNode, requireSuccess, rssMethod, timeCommand } from './lib/measure.js';

const MiB = 1 << 20;
const SIZES = [{ label: '1G', bytes: 1024 * MiB }, { label: '4G', bytes: 4096 * MiB }] as const;
const PROFILE = 'database';
const SEED = 1;
const BASELINE = 'cp --sparse=always';
/** FAIL when the larger machine's peak RSS exceeds RSS_SLOPE x the smaller's + RSS_SLACK_MIB. */
const RSS_SLOPE = 1.25;
const RSS_SLACK_MIB = 32;

interface Row {
  size: string;
  ramBytes: number;
  ramAllocatedBytes: number;
  oursWallSeconds: number;
  oursPeakRssMiB: number;
  baselineWallSeconds: number;
  ratio: number;
}

function requireFreeSpace(dir: string, bytes: number): void {
  const s = fs.statfsSync(dir);
  const free = s.bavail * s.bsize;
  if (free < bytes) {
    throw new Error(`${dir}: ${(free / MiB).toFixed(0)} MiB free, the benchmark needs ${(bytes / MiB).toFixed(0)} MiB`);
  }
}

function measureSize(ctx: BenchContext, size: (typeof SIZES)[number]): Row {
  const dir = ctx.tempDir(`power-on-${size.label}`);
  try {
    // The image and its copy, plus the kernel build under boot/.
    requireFreeSpace(dir, 2 * size.bytes + 256 * MiB);
    const root = path.join(dir, 'root');
    ctx.progress(`power-on --mem ${size.label}`);
    const ours = requireSuccess(measureNode(ctx.machineJs,
      ['power-on', '--root', root, '--mem', size.label, '--profile', PROFILE, '--seed', String(SEED)],
      { cwd: ctx.repo, env: { ...process.env, LKCD_NO_PROGRESS: '1' } }));
    const ram = path.join(root, 'lib', 'machine', 'ram');
    const st = fs.statSync(ram);
    if (st.size !== size.bytes) throw new Error(`${ram}: ${st.size} bytes after power-on --mem ${size.label}, expected ${size.bytes}`);

    ctx.progress(`${BASELINE} of the ${size.label} image`);
    const copy = path.join(dir, 'ram.copy');
    const base = requireSuccess(timeCommand('cp', ['--sparse=always', ram, copy]));
    fs.rmSync(copy);
    return {
      size: size.label,
      ramBytes: size.bytes,
      ramAllocatedBytes: st.blocks * 512,
      oursWallSeconds: ours.wallSeconds,
      oursPeakRssMiB: ours.peakRssKiB / 1024,
      baselineWallSeconds: base.wallSeconds,
      ratio: ours.wallSeconds / base.wallSeconds,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const benchmark: Benchmark = {
  name: 'power-on',
  description: `machine power-on --profile ${PROFILE} --seed ${SEED}; baseline ${BASELINE} of the resulting RAM image`,
  run(ctx: BenchContext): BenchOutcome {
    const rows = SIZES.map((s) => measureSize(ctx, s));
    process.stdout.write(formatTable(
      ['size', 'our wall s', 'our peak RSS MiB', 'baseline wall s', 'ratio'],
      rows.map((r) => [r.size, r.oursWallSeconds.toFixed(2), r.oursPeakRssMiB.toFixed(1), r.baselineWallSeconds.toFixed(2), `${r.ratio.toFixed(1)}x`]),
    ));

    const [small, large] = [rows[0], rows[rows.length - 1]];
    const limitMiB = RSS_SLOPE * small.oursPeakRssMiB + RSS_SLACK_MIB;
    const pass = large.oursPeakRssMiB <= limitMiB;
    const grew = large.oursPeakRssMiB > small.oursPeakRssMiB;
    process.stdout.write(
      `peak RSS ${small.size} -> ${large.size}: ${small.oursPeakRssMiB.toFixed(1)} -> ${large.oursPeakRssMiB.toFixed(1)} MiB ` +
      `(${grew ? '+' : ''}${(large.oursPeakRssMiB - small.oursPeakRssMiB).toFixed(1)} MiB; ` +
      `limit ${RSS_SLOPE} x ${small.size} + ${RSS_SLACK_MIB} MiB = ${limitMiB.toFixed(1)} MiB): ${pass ? 'PASS' : 'FAIL'}\n`);

    const file = ctx.writeResults('power-on.json', {
      benchmark: 'power-on',
      date: new Date().toISOString(),
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpus: os.cpus().length,
      tmpdir: os.tmpdir(),
      profile: PROFILE,
      seed: SEED,
      rssMethod: rssMethod(),
      baseline: BASELINE,
      rows,
      rss: { limitMiB, slope: RSS_SLOPE, slackMiB: RSS_SLACK_MIB, pass },
    });
    process.stdout.write(`results: ${file}\n`);
    return { pass };
  },
};

export default benchmark;
