/**
 * Panic to kexec-booted on 1 GiB and 4 GiB machines (profile database, seed 1).
 *
 * Setup per size: `machine power-on`, then `lkcd config` with the default
 * etc/sysconfig/dump (all RAM, GZIP, SOFTBOOT with the kexec kernel
 * preloaded). The RAM image is copied (cp --sparse=always) before the panic:
 * that copy is the baselines' input, the same bytes stage 1 compresses.
 *
 * Ours: `machine panic "bench"` as a child process, wall time and peak RSS,
 * with the default panic codec (LZ4 pages in memory when the addon has
 * liblz4; the writeout deflates them) and, on a copy of the same machine,
 * with LKCD_PANIC_CODEC=gzip (deflate at panic, as LKCD did): the gain of
 * the panic codec measured in the same run.
 * The time covers Node start-up, opening the machine, stage 1 (compressing
 * the pages in place into spare RAM) and the kexec boot of the new kernel.
 * `machine status` (Node start-up and a read-only open, fastest of
 * STARTUP_REPS) is measured too, and panic minus that is reported.
 * Throughput is pages saved x 4096 bytes / wall seconds (MB = 10^6 bytes).
 * Stored size is the frames the dump occupies x 4096 (metadata included).
 *
 * Baselines, same run, same bytes: `gzip -1`, `zstd -1 -T1`, `lz4 -1` over
 * the copied image as one stream, timed with output to /dev/null, then run
 * again into `wc -c` for their compressed size. They compress across page
 * boundaries with larger windows, so their size is a bound a per-page
 * format cannot reach; their time is the number to compare.
 *
 * Target: peak RSS does not grow with RAM size (STYLE section 1: RAM goes
 * through a bounded cache, never one buffer of all of it).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { formatTable, type Benchmark, type BenchContext, type BenchOutcome } from './lib/bench.js';
import { measureNode, requireSuccess, rssMethod, timeCommand, timeWithCpu } from './lib/measure.js';

const MiB = 1 << 20;
const MB = 1e6;
const PAGE_SIZE = 4096;
const SIZES = [{ label: '1G', bytes: 1024 * MiB }, { label: '4G', bytes: 4096 * MiB }] as const;
const PROFILE = 'database';
const SEED = 1;
const MESSAGE = 'bench';
/** `machine status` runs this many times; the fastest is the start-up figure. */
const STARTUP_REPS = 3;
/** FAIL when the larger machine's peak RSS exceeds RSS_SLOPE x the smaller's + RSS_SLACK_MIB. */
const RSS_SLOPE = 1.25;
const RSS_SLACK_MIB = 32;
const SAVED_LINE = /^dump: saved (\d+) pages \((\d+) compressed\) in (\d+) frames/m;
const CODEC_LINE = /^dump: compressing pages with .*$/m;

interface Tool { readonly name: string; readonly file: string; readonly args: readonly string[] }
const TOOLS: readonly Tool[] = [
  { name: 'gzip -1', file: 'gzip', args: ['-1', '-c'] },
  { name: 'zstd -1', file: 'zstd', args: ['-1', '-c', '-q', '-T1'] },
  { name: 'lz4 -1', file: 'lz4', args: ['-1', '-c', '-q'] },
];

interface BaselineResult {
  tool: string;
  /** Null when the tool is not installed. */
  seconds: number | null;
  /** User + system CPU seconds; null without GNU time or the tool. */
  cpuSeconds: number | null;
  mbPerSecond: number | null;
  outputBytes: number | null;
  missing?: string;
}

interface Row {
  size: string;
  ramBytes: number;
  pagesSaved: number;
  pagesCompressed: number;
  framesUsed: number;
  storedBytes: number;
  oursWallSeconds: number;
  oursPeakRssMiB: number;
  oursMbPerSecond: number;
  startupWallSeconds: number;
  startupPeakRssMiB: number;
  oursMinusStartupSeconds: number;
  baselines: BaselineResult[];
  /** Our wall time / gzip -1's; null when gzip is missing. */
  oursOverGzipTime: number | null;
  /** User + system CPU seconds of `machine panic`; null without GNU time. */
  oursCpuSeconds: number | null;
  /** Issue 10's target: our wall time / zstd -1 -T1's (<= 1.0x), and the same for CPU seconds. */
  oursOverZstdTime: number | null;
  oursOverZstdCpu: number | null;
  /** Cores this machine has (stage 1 compresses on all of them). */
  cores: number;
  /** What stage 1 said it compressed with (its `dump: compressing pages with ...` line). */
  codecLine: string;
  /** The same panic with LKCD_PANIC_CODEC=gzip on a copy of the machine: wall and CPU seconds, frames. */
  gzipAtPanicSeconds: number;
  gzipAtPanicCpuSeconds: number | null;
  gzipAtPanicFrames: number;
}

function requireFreeSpace(dir: string, bytes: number): void {
  const s = fs.statfsSync(dir);
  const free = s.bavail * s.bsize;
  if (free < bytes) {
    throw new Error(`${dir}: ${(free / MiB).toFixed(0)} MiB free, the benchmark needs ${(bytes / MiB).toFixed(0)} MiB`);
  }
}

/** Why a tool cannot run here, or null when it can. */
function missingReason(t: Tool): string | null {
  const probe = spawnSync(t.file, ['--version'], { stdio: 'ignore' });
  if (probe.error) return `${t.file}: ${(probe.error as NodeJS.ErrnoException).code ?? probe.error.message}`;
  return null;
}

/** `tool -1 -c image > /dev/null` timed, then `tool -1 -c image | wc -c` for the size. */
function runBaseline(ctx: BenchContext, t: Tool, image: string, inputBytes: number): BaselineResult {
  const reason = missingReason(t);
  if (reason) return { tool: t.name, seconds: null, cpuSeconds: null, mbPerSecond: null, outputBytes: null, missing: reason };
  ctx.progress(`${t.name} of ${(inputBytes / MiB).toFixed(0)} MiB`);
  const devNull = fs.openSync('/dev/null', 'w');
  let s: number;
  let cpu: number | null;
  try {
    const r = timeWithCpu(t.file, [...t.args, image], devNull);
    s = r.wallSeconds;
    cpu = r.cpuSeconds;
    if (r.status !== 0) throw new Error(`${t.name}: exited ${r.status}: ${r.stderr.trim()}`);
  } finally {
    fs.closeSync(devNull);
  }
  ctx.progress(`${t.name} | wc -c`);
  // The output is hundreds of MiB: count it in a pipe rather than buffer it here.
  const sized = spawnSync('bash', ['-o', 'pipefail', '-c', '"$@" | wc -c', 'bash', t.file, ...t.args, image], { encoding: 'utf8' });
  if (sized.error) throw new Error(`${t.name} | wc -c: ${sized.error.message}`);
  if (sized.status !== 0) throw new Error(`${t.name} | wc -c: exited ${sized.status}: ${sized.stderr.trim()}`);
  const outputBytes = Number(sized.stdout.trim());
  if (!Number.isSafeInteger(outputBytes) || outputBytes <= 0) throw new Error(`${t.name} | wc -c: printed '${sized.stdout.trim()}'`);
  return { tool: t.name, seconds: s, cpuSeconds: cpu, mbPerSecond: inputBytes / MB / s, outputBytes };
}

function measureSize(ctx: BenchContext, size: (typeof SIZES)[number]): Row {
  const dir = ctx.tempDir(`panic-${size.label}`);
  try {
    // The image, its copy, the machine copied for the panic that deflates, the kernel build under boot/ and slack.
    requireFreeSpace(dir, 3 * size.bytes + 512 * MiB);
    const root = path.join(dir, 'root');
    const env = { ...process.env, LKCD_NO_PROGRESS: '1' };
    const opts = { cwd: ctx.repo, env };
    const lkcdJs = path.join(ctx.repo, 'dist', 'lkcd', 'main.js');

    ctx.progress(`power-on --mem ${size.label}`);
    requireSuccess(timeCommand(process.execPath, [ctx.machineJs,
      'power-on', '--root', root, '--mem', size.label, '--profile', PROFILE, '--seed', String(SEED)], opts));
    ctx.progress('lkcd config');
    const config = requireSuccess(timeCommand(process.execPath, [lkcdJs, 'config', '--root', root], opts));
    if (!/Preloading kernel for kexec/.test(config.stdout)) {
      throw new Error(`lkcd config did not preload kexec (is SOFTBOOT set in etc/sysconfig/dump?): ${config.stdout.trim()}`);
    }

    const ram = path.join(root, 'lib', 'machine', 'ram');
    const st = fs.statSync(ram);
    if (st.size !== size.bytes) throw new Error(`${ram}: ${st.size} bytes after power-on --mem ${size.label}, expected ${size.bytes}`);
    ctx.progress(`cp --sparse=always of the ${size.label} image (baseline input)`);
    const image = path.join(dir, 'ram.copy');
    requireSuccess(timeCommand('cp', ['--sparse=always', ram, image]));

    ctx.progress(`machine status x${STARTUP_REPS} (Node start-up + open)`);
    let startup = requireSuccess(measureNode(ctx.machineJs, ['status', '--root', root], opts));
    for (let i = 1; i < STARTUP_REPS; i++) {
      const m = requireSuccess(measureNode(ctx.machineJs, ['status', '--root', root], opts));
      if (m.wallSeconds < startup.wallSeconds) startup = m;
    }

    ctx.progress(`copy of the machine for the panic that deflates (LKCD_PANIC_CODEC=gzip)`);
    const gzipRoot = path.join(dir, 'root-gzip');
    requireSuccess(timeCommand('cp', ['-a', '--sparse=always', root, gzipRoot]));

    ctx.progress(`machine panic "${MESSAGE}" (${size.label})`);
    const ours = requireSuccess(measureNode(ctx.machineJs, ['panic', '--root', root, MESSAGE], opts));
    const saved = SAVED_LINE.exec(ours.stdout);
    if (!saved) throw new Error(`machine panic printed no 'dump: saved N pages (M compressed) in F frames' line:\n${ours.stdout}`);
    if (!/^kexec: booted /m.test(ours.stdout)) throw new Error(`machine panic did not end in a kexec boot:\n${ours.stdout}`);
    const [pagesSaved, pagesCompressed, framesUsed] = saved.slice(1, 4).map(Number);
    const codecLine = CODEC_LINE.exec(ours.stdout)?.[0] ?? '(no codec line)';

    ctx.progress(`machine panic "${MESSAGE}" with LKCD_PANIC_CODEC=gzip (${size.label})`);
    const gz = requireSuccess(measureNode(ctx.machineJs, ['panic', '--root', gzipRoot, MESSAGE], { ...opts, env: { ...env, LKCD_PANIC_CODEC: 'gzip' } }));
    const gzSaved = SAVED_LINE.exec(gz.stdout);
    if (!gzSaved || Number(gzSaved[1]) !== pagesSaved) throw new Error(`the panic that deflated saved other pages:\n${gz.stdout}`);
    fs.rmSync(gzipRoot, { recursive: true, force: true });

    const baselines = TOOLS.map((t) => runBaseline(ctx, t, image, size.bytes));
    fs.rmSync(image);
    const gzip = baselines[0];
    const zstd = baselines[1];
    return {
      size: size.label,
      ramBytes: size.bytes,
      pagesSaved,
      pagesCompressed,
      framesUsed,
      storedBytes: framesUsed * PAGE_SIZE,
      oursWallSeconds: ours.wallSeconds,
      oursPeakRssMiB: ours.peakRssKiB / 1024,
      oursMbPerSecond: (pagesSaved * PAGE_SIZE) / MB / ours.wallSeconds,
      startupWallSeconds: startup.wallSeconds,
      startupPeakRssMiB: startup.peakRssKiB / 1024,
      oursMinusStartupSeconds: ours.wallSeconds - startup.wallSeconds,
      baselines,
      oursOverGzipTime: gzip.seconds === null ? null : ours.wallSeconds / gzip.seconds,
      oursCpuSeconds: ours.cpuSeconds,
      oursOverZstdTime: zstd.seconds === null ? null : ours.wallSeconds / zstd.seconds,
      oursOverZstdCpu: zstd.cpuSeconds === null || ours.cpuSeconds === null ? null : ours.cpuSeconds / zstd.cpuSeconds,
      cores: os.availableParallelism(),
      codecLine,
      gzipAtPanicSeconds: gz.wallSeconds,
      gzipAtPanicCpuSeconds: gz.cpuSeconds,
      gzipAtPanicFrames: Number(gzSaved[3]),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const mib = (bytes: number | null): string => (bytes === null ? '-' : (bytes / MiB).toFixed(0));
const secs = (s: number | null): string => (s === null ? '-' : s.toFixed(2));

const benchmark: Benchmark = {
  name: 'panic',
  description: `machine panic (stage 1 + kexec boot) after lkcd config, profile ${PROFILE} seed ${SEED}; ` +
    'baselines gzip/zstd/lz4 -1 over a copy of the same RAM image',
  run(ctx: BenchContext): BenchOutcome {
    const rows = SIZES.map((s) => measureSize(ctx, s));
    const names = TOOLS.map((t) => t.name);

    process.stdout.write('time: our wall s = `machine panic` end to end (Node start-up + stage 1 + kexec boot); ' +
      '-startup = minus the fastest `machine status`; MB/s = pages saved x 4096 / wall s, MB = 10^6 bytes\n');
    process.stdout.write(formatTable(
      ['size', 'pages saved', 'our wall s', 'startup s', 'our -startup s', 'our MB/s', 'our peak RSS MiB',
        ...names.map((n) => `${n} s`), 'ours/gzip time'],
      rows.map((r) => [
        r.size, String(r.pagesSaved), r.oursWallSeconds.toFixed(2), r.startupWallSeconds.toFixed(2),
        r.oursMinusStartupSeconds.toFixed(2), r.oursMbPerSecond.toFixed(1), r.oursPeakRssMiB.toFixed(1),
        ...r.baselines.map((b) => secs(b.seconds)),
        r.oursOverGzipTime === null ? '-' : `${r.oursOverGzipTime.toFixed(2)}x`,
      ]),
    ));
    process.stdout.write('\nissue 10 target 1: stage 1 time <= 1.0x zstd -1 -T1 over the same image (CPU = user + system seconds; ' +
      `load average at the end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')})\n`);
    process.stdout.write(formatTable(
      ['size', 'cores', 'our wall s', 'our CPU s', 'zstd -1 wall s', 'zstd -1 CPU s', 'ours/zstd time', 'ours/zstd CPU'],
      rows.map((r) => [
        r.size, String(r.cores), r.oursWallSeconds.toFixed(2), secs(r.oursCpuSeconds), secs(r.baselines[1].seconds), secs(r.baselines[1].cpuSeconds),
        r.oursOverZstdTime === null ? '-' : `${r.oursOverZstdTime.toFixed(2)}x`, r.oursOverZstdCpu === null ? '-' : `${r.oursOverZstdCpu.toFixed(2)}x`,
      ]),
    ));
    process.stdout.write('\nthe panic codec: ours (default) against the same panic with LKCD_PANIC_CODEC=gzip on a copy of the machine\n');
    process.stdout.write(formatTable(
      ['size', 'stage 1 said', 'ours wall s', 'ours CPU s', 'gzip at panic wall s', 'gzip at panic CPU s', 'ours/gzip at panic', 'frames ours / gzip at panic'],
      rows.map((r) => [
        r.size, r.codecLine.replace(/^dump: compressing pages with /, ''), r.oursWallSeconds.toFixed(2), secs(r.oursCpuSeconds),
        r.gzipAtPanicSeconds.toFixed(2), secs(r.gzipAtPanicCpuSeconds), `${(r.oursWallSeconds / r.gzipAtPanicSeconds).toFixed(2)}x`,
        `${r.framesUsed} / ${r.gzipAtPanicFrames}`,
      ]),
    ));
    process.stdout.write('\nsize: ours = frames x 4096 (page records + dump metadata); baselines = one stream over the whole image\n');
    process.stdout.write(formatTable(
      ['size', 'frames', 'ours MiB', ...names.map((n) => `${n} MiB`), ...names.map((n) => `ours/${n.split(' ')[0]}`)],
      rows.map((r) => [
        r.size, String(r.framesUsed), mib(r.storedBytes),
        ...r.baselines.map((b) => mib(b.outputBytes)),
        ...r.baselines.map((b) => (b.outputBytes === null ? '-' : `${(r.storedBytes / b.outputBytes).toFixed(2)}x`)),
      ]),
    ));
    const missing = rows[0].baselines.filter((b) => b.missing);
    for (const b of missing) process.stdout.write(`baseline ${b.tool} skipped: ${b.missing}\n`);

    const [small, large] = [rows[0], rows[rows.length - 1]];
    const limitMiB = RSS_SLOPE * small.oursPeakRssMiB + RSS_SLACK_MIB;
    const pass = large.oursPeakRssMiB <= limitMiB;
    const grew = large.oursPeakRssMiB > small.oursPeakRssMiB;
    process.stdout.write(
      `peak RSS ${small.size} -> ${large.size}: ${small.oursPeakRssMiB.toFixed(1)} -> ${large.oursPeakRssMiB.toFixed(1)} MiB ` +
      `(${grew ? '+' : ''}${(large.oursPeakRssMiB - small.oursPeakRssMiB).toFixed(1)} MiB; ` +
      `limit ${RSS_SLOPE} x ${small.size} + ${RSS_SLACK_MIB} MiB = ${limitMiB.toFixed(1)} MiB): ${pass ? 'PASS' : 'FAIL'}\n`);

    const file = ctx.writeResults('panic.json', {
      benchmark: 'panic',
      date: new Date().toISOString(),
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpu: os.cpus()[0]?.model,
      cpus: os.cpus().length,
      tmpdir: os.tmpdir(),
      profile: PROFILE,
      seed: SEED,
      rssMethod: rssMethod(),
      baselines: TOOLS.map((t) => `${t.file} ${t.args.join(' ')}`),
      rows,
      rss: { limitMiB, slope: RSS_SLOPE, slackMiB: RSS_SLACK_MIB, pass },
    });
    process.stdout.write(`results: ${file}\n`);
    return { pass };
  },
};

export default benchmark;
