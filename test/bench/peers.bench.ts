/**
 * Our pipeline against its peers on the same RAM image: makedumpfile run on
 * our ELF export of that memory (dump size at the same filter level, time,
 * peak RSS), and the panic path (stage 1) against gzip -1, zstd -1 and
 * lz4 -1 over the image. Sizes 1G and 4G x profiles database and
 * fileserver, seed 1; medians of several runs.
 *
 * Per size and profile, in a temporary root under os.tmpdir():
 *  1. `machine power-on`, then at once `machine export-vmcore -o vmcore`
 *     (the memory makedumpfile sees) and `cp --sparse=always` of the RAM
 *     image (the compressors' input); `machine status` x3, the fastest is
 *     the Node start-up figure.
 *  2. makedumpfile on the vmcore, each filter level REPS times, interleaved:
 *     `makedumpfile -c -d D --message-level 22 vmcore out` (its output file
 *     deleted first: makedumpfile refuses to overwrite). -c is zlib
 *     compress2 at Z_BEST_SPEED, one stream per page; --message-level 22
 *     only turns the progress bar off and the page report on (the report
 *     gives the pages written and the zero pages it dropped).
 *  3. gzip -1 / zstd -1 -T1 / lz4 -1 over the image copy, REPS times each,
 *     output to /dev/null; then once more into `wc -c` for the size.
 *  4. Ours, per level 8 (ALL_RAM), 4 (USED), 2 (KERN): DUMP_LEVEL in
 *     etc/sysconfig/dump, `lkcd config` (arms the dump, not counted), then
 *     the counted steps `machine panic`, `lkcd config` (writeout in the
 *     kexec-booted kernel) and `lkcd save`; size = DUMPDIR/N/dump.N. The
 *     first level-8 run uses the machine that was exported; every other run
 *     powers on again with the same seed, and the RAM is checked with `cmp`
 *     against the copy before anything touches it (power-on is
 *     deterministic per machine; the check makes sure).
 *
 * Every command runs under /usr/bin/time -v: wall time measured here, peak
 * RSS and CPU time from its report. Medians over the runs. Results:
 * <tmpdir>/lkcd-softboot-bench/peers.json and peers.md.
 *
 * Environment (for short runs): PEERS_SIZES=1G,4G  PEERS_PROFILES=database,fileserver
 * PEERS_REPS=3 (makedumpfile and the compressors)  PEERS_OURS_REPS (default
 * 3 up to 1 GiB, 1 above: our 4 GiB pipeline takes minutes per level).
 *
 * No target: the benchmark passes when every command ran and the RAM was
 * the same for every run of a size and profile.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseSize } from '../../src/codec/index.js';
import { DUMP_GZIP_DEFAULT_LEVEL } from '../../src/dump/codecs/page_codec.js';
import { PROFILE_NAMES } from '../../src/kernel/workload/profiles.js';
import { type Benchmark, type BenchContext, type BenchOutcome } from './lib/bench.js';
import { measureCommand, median, requireGnuTime, requireOk, type CommandMeasurement } from './lib/measure-command.js';

const KiB = 1024;
const MiB = 1 << 20;
const GiB = 1 << 30;
const MB = 1e6;
const PAGE_SIZE = 4096;
const SEED = 1;
const MESSAGE = 'bench';
const DEFAULT_SIZES = ['1G', '4G'];
const DEFAULT_PROFILES = ['database', 'fileserver'];
const DEFAULT_REPS = 3;
/** Our pipeline runs this often at or below OURS_SMALL_BYTES, once above (unless PEERS_OURS_REPS says). */
const OURS_REPS_SMALL = 3;
const OURS_SMALL_BYTES = GiB;
const STARTUP_REPS = 3;
/** makedumpfile's message level: 2 common + 4 error + 16 report, no 1 (progress bar). */
const MDF_MESSAGE_LEVEL = 22;
const SAVED_LINE = /^dump: saved (\d+) pages \((\d+) compressed\) in (\d+) frames/m;

interface Pair {
  /** Our DUMP_LEVEL. */
  readonly level: 8 | 4 | 2;
  readonly levelName: string;
  /** dh_dump_level as `lkcd config` arms it (the cumulative mask). */
  readonly mask: number;
  /** makedumpfile -d. */
  readonly d: number;
  readonly why: string;
}

const PAIRS: readonly Pair[] = [
  {
    level: 8, levelName: 'ALL_RAM', mask: 0xf, d: 0,
    why: 'every page on both sides (our level 8 saves all RAM but the dumper\'s own frames; -d 0 excludes nothing)',
  },
  {
    level: 4, levelName: 'USED', mask: 0x7, d: 17,
    why: 'both drop free pages (16); -d 17 also drops zero pages (1), which no LKCD level does, so -d 16 would be ' +
      'the exact page set; -d 17 is the customary pairing and the zero pages it drops are counted in the pages column',
  },
  {
    level: 2, levelName: 'KERN', mask: 0x3, d: 31,
    why: 'both keep kernel pages only (reserved, slab, kernel): -d 31 drops cache (2, 4), user (8) and free (16) ' +
      'pages like our level 2, and zero pages (1) besides (-d 30 would be the exact set)',
  },
];

interface Tool { readonly name: string; readonly file: string; readonly args: readonly string[] }
const TOOLS: readonly Tool[] = [
  { name: 'gzip -1', file: 'gzip', args: ['-1', '-c'] },
  { name: 'zstd -1', file: 'zstd', args: ['-1', '-c', '-q', '-T1'] },
  { name: 'lz4 -1', file: 'lz4', args: ['-1', '-c', '-q'] },
];

interface Timing { wallSeconds: number; cpuSeconds: number; peakRssKiB: number }

interface MdfRun extends Timing {
  bytes: number;
  /** Pages in the dump file: Total pages - Excluded pages of the report. */
  pagesWritten: number;
  /** "Pages filled with zero" of the report: pages dropped for being zero. */
  zeroPagesExcluded: number;
}

interface BaselineResult {
  tool: string;
  command: string;
  runs: Timing[];
  outputBytes: number | null;
  missing?: string;
}

interface OurRun {
  level: number;
  /** The first `lkcd config` that arms the dump: set-up, not counted. */
  arm: Timing;
  panic: Timing;
  writeout: Timing;
  save: Timing;
  /** panic + writeout + save. */
  totalSeconds: number;
  totalCpuSeconds: number;
  /** The largest of the three counted processes. */
  peakRssKiB: number;
  /** DUMPDIR/N/dump.N. */
  bytes: number;
  pages: number;
  pagesCompressed: number;
  /** Frames the dump occupied in RAM after stage 1 (panic line). */
  stage1Frames: number;
  repoweredOn: boolean;
}

interface CaseResult {
  size: string;
  ramBytes: number;
  profile: string;
  seed: number;
  reps: number;
  oursReps: number;
  powerOnSeconds: number;
  exportSeconds: number;
  vmcoreBytes: number;
  startupSeconds: number;
  makedumpfile: Record<string, MdfRun[]>;
  baselines: BaselineResult[];
  ours: Record<string, OurRun[]>;
  loadAverageBefore: number[];
  loadAverageAfter: number[];
  elapsedSeconds: number;
}

// ---- set-up ---------------------------------------------------------------------------------------

function listEnv(name: string, fallback: readonly string[]): string[] {
  const v = process.env[name]?.trim();
  if (!v) return [...fallback];
  return v.split(/[\s,]+/).filter((x) => x !== '');
}

function intEnv(name: string): number | undefined {
  const v = process.env[name]?.trim();
  if (!v) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 99) throw new Error(`${name}=${v}: expected an integer in 1..99`);
  return n;
}

interface Settings {
  sizes: { label: string; bytes: number }[];
  profiles: string[];
  reps: number;
  oursRepsOverride: number | undefined;
}

function settings(): Settings {
  const sizes = listEnv('PEERS_SIZES', DEFAULT_SIZES).map((label) => {
    const bytes = Number(parseSize(label, 'PEERS_SIZES'));
    if (bytes % PAGE_SIZE !== 0 || bytes < 64 * MiB) throw new Error(`PEERS_SIZES: ${label} is not a RAM size (64M or more, whole pages)`);
    return { label, bytes };
  });
  const profiles = listEnv('PEERS_PROFILES', DEFAULT_PROFILES);
  for (const p of profiles) {
    if (!(PROFILE_NAMES as readonly string[]).includes(p)) throw new Error(`PEERS_PROFILES: unknown profile '${p}' (${PROFILE_NAMES.join(', ')})`);
  }
  return { sizes, profiles, reps: intEnv('PEERS_REPS') ?? DEFAULT_REPS, oursRepsOverride: intEnv('PEERS_OURS_REPS') };
}

function requireFreeSpace(dir: string, bytes: number): void {
  const s = fs.statfsSync(dir);
  const free = s.bavail * s.bsize;
  if (free < bytes) {
    throw new Error(`${dir}: ${(free / MiB).toFixed(0)} MiB free, the benchmark needs ${(bytes / MiB).toFixed(0)} MiB`);
  }
}

function makedumpfileVersion(): string {
  const r = spawnSync('makedumpfile', ['-v'], { encoding: 'utf8' });
  if (r.error) throw new Error(`makedumpfile: ${(r.error as NodeJS.ErrnoException).code ?? r.error.message} (install makedumpfile)`);
  const line = `${r.stdout}\n${r.stderr}`.split('\n').find((l) => /version/i.test(l));
  return line?.replace(/^makedumpfile:\s*/, '').trim() ?? 'unknown';
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch { /* not Linux */ }
  return os.cpus()[0]?.model ?? 'unknown';
}

/** Why a tool cannot run here, or null when it can. */
function missingReason(t: Tool): string | null {
  const probe = spawnSync(t.file, ['--version'], { stdio: 'ignore' });
  if (probe.error) return `${t.file}: ${(probe.error as NodeJS.ErrnoException).code ?? probe.error.message}`;
  return null;
}

const timing = (m: CommandMeasurement): Timing =>
  ({ wallSeconds: m.wallSeconds, cpuSeconds: m.userSeconds + m.systemSeconds, peakRssKiB: m.peakRssKiB });

// ---- one size and profile -------------------------------------------------------------------------

/** Parses makedumpfile's --message-level 16 report (hex page counts). */
function parseMdfReport(stdout: string, command: string): { pagesWritten: number; zeroPagesExcluded: number } {
  const hexField = (label: string): number => {
    const m = new RegExp(`^\\s*${label}\\s*:\\s*0x([0-9a-f]+)`, 'mi').exec(stdout);
    if (!m) throw new Error(`${command}: no '${label}' line in its report:\n${stdout}`);
    return parseInt(m[1], 16);
  };
  // "Remaining pages" counts pages of overlapping PT_LOADs twice (our export maps the kernel image
  // twice, as a kernel's vmcore does); total - excluded counts each frame once.
  return { pagesWritten: hexField('Total pages') - hexField('Excluded pages'), zeroPagesExcluded: hexField('Pages filled with zero') };
}

function runMakedumpfile(ctx: BenchContext, vmcore: string, out: string, d: number): MdfRun {
  fs.rmSync(out, { force: true });
  ctx.progress(`makedumpfile -c -d ${d}`);
  const m = requireOk(measureCommand('makedumpfile', ['-c', '-d', String(d), '--message-level', String(MDF_MESSAGE_LEVEL), vmcore, out]));
  const bytes = fs.statSync(out).size;
  fs.rmSync(out, { force: true });
  return { ...timing(m), bytes, ...parseMdfReport(m.stdout, m.command) };
}

function runBaseline(ctx: BenchContext, t: Tool, image: string, reps: number): BaselineResult {
  const command = `${t.file} ${t.args.join(' ')} <image> > /dev/null`;
  const reason = missingReason(t);
  if (reason) return { tool: t.name, command, runs: [], outputBytes: null, missing: reason };
  const runs: Timing[] = [];
  for (let i = 0; i < reps; i++) {
    ctx.progress(`${t.name} (${i + 1}/${reps})`);
    runs.push(timing(requireOk(measureCommand(t.file, [...t.args, image], { stdoutToDevNull: true }))));
  }
  // The output is hundreds of MiB: count it in a pipe rather than buffer it here.
  ctx.progress(`${t.name} | wc -c`);
  const sized = spawnSync('bash', ['-o', 'pipefail', '-c', '"$@" | wc -c', 'bash', t.file, ...t.args, image], { encoding: 'utf8' });
  if (sized.error) throw new Error(`${t.name} | wc -c: ${sized.error.message}`);
  if (sized.status !== 0) throw new Error(`${t.name} | wc -c: exited ${sized.status}: ${sized.stderr.trim()}`);
  const outputBytes = Number(sized.stdout.trim());
  if (!Number.isSafeInteger(outputBytes) || outputBytes <= 0) throw new Error(`${t.name} | wc -c: printed '${sized.stdout.trim()}'`);
  return { tool: t.name, command, runs, outputBytes };
}

interface Cli { node: string; machineJs: string; lkcdJs: string; env: NodeJS.ProcessEnv; cwd: string }

function node(cli: Cli, script: string, args: readonly string[]): CommandMeasurement {
  const shown = `node ${path.relative(cli.cwd, script)} ${args.join(' ')}`;
  return requireOk(measureCommand(cli.node, [script, ...args], { cwd: cli.cwd, env: cli.env, shown }));
}

function powerOn(cli: Cli, root: string, size: string, profile: string): CommandMeasurement {
  return node(cli, cli.machineJs, ['power-on', '--root', root, '--mem', size, '--profile', profile, '--seed', String(SEED)]);
}

function setLevel(root: string, sysconfigText: string, level: number): void {
  const file = path.join(root, 'etc', 'sysconfig', 'dump');
  if (!/^DUMP_LEVEL=.*$/m.test(sysconfigText)) throw new Error(`${file}: no DUMP_LEVEL= line in the file lkcd config wrote`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, sysconfigText.replace(/^DUMP_LEVEL=.*$/m, `DUMP_LEVEL=${level}`), { mode: 0o600 });
}

/** Arm, panic, write out, save on the machine in `root`; its sysconfig already holds the level. */
function runOurs(ctx: BenchContext, cli: Cli, root: string, pair: Pair, repoweredOn: boolean): OurRun {
  const r = ['--root', root];
  ctx.progress(`ours level ${pair.level}: lkcd config (arm)`);
  const arm = node(cli, cli.lkcdJs, ['config', ...r]);
  const armed = /level 0x([0-9a-f]+)/.exec(arm.stdout);
  if (!armed || parseInt(armed[1], 16) !== pair.mask) {
    throw new Error(`lkcd config armed ${armed ? `level 0x${armed[1]}` : 'no level'}, expected 0x${pair.mask.toString(16)} for DUMP_LEVEL=${pair.level}:\n${arm.stdout}`);
  }
  if (!/Preloading kernel for kexec/.test(arm.stdout)) throw new Error(`lkcd config did not preload kexec: ${arm.stdout.trim()}`);

  ctx.progress(`ours level ${pair.level}: machine panic`);
  const panic = node(cli, cli.machineJs, ['panic', ...r, MESSAGE]);
  const saved = SAVED_LINE.exec(panic.stdout);
  if (!saved) throw new Error(`machine panic printed no 'dump: saved N pages (M compressed) in F frames' line:\n${panic.stdout}`);
  if (!/^kexec: booted /m.test(panic.stdout)) throw new Error(`machine panic did not end in a kexec boot:\n${panic.stdout}`);

  ctx.progress(`ours level ${pair.level}: lkcd config (writeout)`);
  const writeout = node(cli, cli.lkcdJs, ['config', ...r]);
  if (!/^dump: wrote the dump/m.test(writeout.stdout)) throw new Error(`lkcd config after the panic wrote no dump:\n${writeout.stdout}`);
  ctx.progress(`ours level ${pair.level}: lkcd save`);
  const save = node(cli, cli.lkcdJs, ['save', ...r]);

  const list = JSON.parse(node(cli, cli.lkcdJs, ['list', '--json', ...r]).stdout) as
    Array<{ n: number; dir: string; level: number; pages: number; pages_compressed: number; complete: boolean }>;
  const d = list[list.length - 1];
  if (!d || !d.complete) throw new Error(`lkcd list: no complete dump after lkcd save (${JSON.stringify(d)})`);
  if (d.level !== pair.mask) throw new Error(`dump ${d.n} has level ${d.level}, expected ${pair.mask}`);
  const dumpFile = path.join(d.dir, `dump.${d.n}`);
  const bytes = fs.statSync(dumpFile).size;
  // Nothing of this run is needed any more; the next run powers on afresh.
  fs.rmSync(d.dir, { recursive: true, force: true });

  const counted = [panic, writeout, save];
  return {
    level: pair.level,
    arm: timing(arm),
    panic: timing(panic),
    writeout: timing(writeout),
    save: timing(save),
    totalSeconds: counted.reduce((s, m) => s + m.wallSeconds, 0),
    totalCpuSeconds: counted.reduce((s, m) => s + m.userSeconds + m.systemSeconds, 0),
    peakRssKiB: Math.max(...counted.map((m) => m.peakRssKiB)),
    bytes,
    pages: d.pages,
    pagesCompressed: d.pages_compressed,
    stage1Frames: Number(saved[3]),
    repoweredOn,
  };
}

function measureCase(ctx: BenchContext, s: Settings, size: { label: string; bytes: number }, profile: string): CaseResult {
  const started = Date.now();
  const loadAverageBefore = os.loadavg();
  const dir = ctx.tempDir(`peers-${size.label}-${profile}`);
  try {
    // Most at once: RAM image, its copy, the vmcore and a makedumpfile output (or the dump device
    // and dump.N later), each at most the RAM size; plus the kernel build and slack.
    requireFreeSpace(dir, 4 * size.bytes + GiB);
    const root = path.join(dir, 'root');
    const vmcore = path.join(dir, 'vmcore');
    const image = path.join(dir, 'ram.copy');
    const mdfOut = path.join(dir, 'makedumpfile.out');
    const ram = path.join(root, 'lib', 'machine', 'ram');
    const cli: Cli = {
      node: process.execPath,
      machineJs: ctx.machineJs,
      lkcdJs: path.join(ctx.repo, 'dist', 'lkcd', 'main.js'),
      env: { ...process.env, LKCD_NO_PROGRESS: '1' },
      cwd: ctx.repo,
    };

    // 1. The machine, its ELF export and a copy of its RAM, before anything else touches it.
    ctx.progress(`${size.label} ${profile}: power-on`);
    const on = powerOn(cli, root, size.label, profile);
    const st = fs.statSync(ram);
    if (st.size !== size.bytes) throw new Error(`${ram}: ${st.size} bytes after power-on --mem ${size.label}, expected ${size.bytes}`);
    ctx.progress(`${size.label} ${profile}: export-vmcore`);
    const exported = node(cli, cli.machineJs, ['export-vmcore', '--root', root, '-o', vmcore]);
    const vmcoreBytes = fs.statSync(vmcore).size;
    ctx.progress(`${size.label} ${profile}: cp --sparse=always of the image`);
    const cp = spawnSync('cp', ['--sparse=always', ram, image], { encoding: 'utf8' });
    if (cp.status !== 0) throw new Error(`cp --sparse=always ${ram}: ${cp.error?.message ?? cp.stderr.trim()}`);
    let startupSeconds = Infinity;
    for (let i = 0; i < STARTUP_REPS; i++) {
      startupSeconds = Math.min(startupSeconds, node(cli, cli.machineJs, ['status', '--root', root]).wallSeconds);
    }

    // 2. makedumpfile, the levels interleaved so that load changes spread over all of them.
    const makedumpfile: Record<string, MdfRun[]> = Object.fromEntries(PAIRS.map((p) => [String(p.d), []]));
    for (let i = 0; i < s.reps; i++) {
      for (const p of PAIRS) makedumpfile[String(p.d)].push(runMakedumpfile(ctx, vmcore, mdfOut, p.d));
    }
    fs.rmSync(vmcore, { force: true });

    // 3. The compressors over the image copy.
    const baselines = TOOLS.map((t) => runBaseline(ctx, t, image, s.reps));

    // 4. Ours: the exported machine first (level 8), then fresh power-ons with the same seed.
    const oursReps = s.oursRepsOverride ?? (size.bytes <= OURS_SMALL_BYTES ? OURS_REPS_SMALL : 1);
    const ours: Record<string, OurRun[]> = Object.fromEntries(PAIRS.map((p) => [String(p.level), []]));
    let sysconfigText: string | undefined;
    for (let i = 0; i < oursReps; i++) {
      for (const p of PAIRS) {
        const fresh = !(i === 0 && p === PAIRS[0]);
        if (fresh) {
          if (sysconfigText === undefined) throw new Error('internal: no sysconfig text from the first run');
          fs.rmSync(root, { recursive: true, force: true });
          ctx.progress(`${size.label} ${profile}: power-on again (run ${i + 1}, level ${p.level})`);
          powerOn(cli, root, size.label, profile);
          const same = spawnSync('cmp', ['-s', ram, image]);
          if (same.status !== 0) {
            throw new Error(`power-on --mem ${size.label} --profile ${profile} --seed ${SEED} did not reproduce the RAM image (cmp exit ${same.status})`);
          }
          setLevel(root, sysconfigText, p.level);
        } else if (p.level !== 8) {
          throw new Error('internal: the first run must be level 8, the default');
        }
        ours[String(p.level)].push(runOurs(ctx, cli, root, p, fresh));
        sysconfigText ??= fs.readFileSync(path.join(root, 'etc', 'sysconfig', 'dump'), 'utf8');
      }
    }

    return {
      size: size.label,
      ramBytes: size.bytes,
      profile,
      seed: SEED,
      reps: s.reps,
      oursReps,
      powerOnSeconds: on.wallSeconds,
      exportSeconds: exported.wallSeconds,
      vmcoreBytes,
      startupSeconds,
      makedumpfile,
      baselines,
      ours,
      loadAverageBefore,
      loadAverageAfter: os.loadavg(),
      elapsedSeconds: (Date.now() - started) / 1000,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---- summary --------------------------------------------------------------------------------------

interface PeerRow {
  size: string;
  profile: string;
  ourLevel: number;
  ourLevelName: string;
  makedumpfileD: number;
  oursBytes: number;
  makedumpfileBytes: number;
  sizeRatio: number;
  oursSeconds: number;
  makedumpfileSeconds: number;
  timeRatio: number;
  oursCpuSeconds: number;
  makedumpfileCpuSeconds: number;
  oursPeakRssMiB: number;
  makedumpfilePeakRssMiB: number;
  oursPages: number;
  makedumpfilePages: number;
  makedumpfileZeroPagesExcluded: number;
  oursRuns: number;
  makedumpfileRuns: number;
}

interface StepRow {
  size: string;
  profile: string;
  level: number;
  armSeconds: number;
  panicSeconds: number;
  writeoutSeconds: number;
  saveSeconds: number;
  totalSeconds: number;
  panicPeakRssMiB: number;
  writeoutPeakRssMiB: number;
  savePeakRssMiB: number;
  runs: number;
}

interface PanicRow {
  size: string;
  profile: string;
  pagesSaved: number;
  panicSeconds: number;
  startupSeconds: number;
  stage1Seconds: number;
  stage1MbPerSecond: number;
  panicMbPerSecond: number;
  stage1StoredBytes: number;
  runs: number;
  baselines: { tool: string; seconds: number | null; mbPerSecond: number | null; outputBytes: number | null; runs: number }[];
}

const med = <T>(xs: readonly T[], f: (x: T) => number): number => median(xs.map(f));

function peerRows(c: CaseResult): PeerRow[] {
  return PAIRS.map((p) => {
    const o = c.ours[String(p.level)];
    const m = c.makedumpfile[String(p.d)];
    const oursBytes = med(o, (r) => r.bytes);
    const mdfBytes = med(m, (r) => r.bytes);
    const oursSeconds = med(o, (r) => r.totalSeconds);
    const mdfSeconds = med(m, (r) => r.wallSeconds);
    return {
      size: c.size,
      profile: c.profile,
      ourLevel: p.level,
      ourLevelName: p.levelName,
      makedumpfileD: p.d,
      oursBytes,
      makedumpfileBytes: mdfBytes,
      sizeRatio: oursBytes / mdfBytes,
      oursSeconds,
      makedumpfileSeconds: mdfSeconds,
      timeRatio: oursSeconds / mdfSeconds,
      oursCpuSeconds: med(o, (r) => r.totalCpuSeconds),
      makedumpfileCpuSeconds: med(m, (r) => r.cpuSeconds),
      oursPeakRssMiB: med(o, (r) => r.peakRssKiB) / KiB,
      makedumpfilePeakRssMiB: med(m, (r) => r.peakRssKiB) / KiB,
      oursPages: med(o, (r) => r.pages),
      makedumpfilePages: med(m, (r) => r.pagesWritten),
      makedumpfileZeroPagesExcluded: med(m, (r) => r.zeroPagesExcluded),
      oursRuns: o.length,
      makedumpfileRuns: m.length,
    };
  });
}

function stepRows(c: CaseResult): StepRow[] {
  return PAIRS.map((p) => {
    const o = c.ours[String(p.level)];
    return {
      size: c.size,
      profile: c.profile,
      level: p.level,
      armSeconds: med(o, (r) => r.arm.wallSeconds),
      panicSeconds: med(o, (r) => r.panic.wallSeconds),
      writeoutSeconds: med(o, (r) => r.writeout.wallSeconds),
      saveSeconds: med(o, (r) => r.save.wallSeconds),
      totalSeconds: med(o, (r) => r.totalSeconds),
      panicPeakRssMiB: med(o, (r) => r.panic.peakRssKiB) / KiB,
      writeoutPeakRssMiB: med(o, (r) => r.writeout.peakRssKiB) / KiB,
      savePeakRssMiB: med(o, (r) => r.save.peakRssKiB) / KiB,
      runs: o.length,
    };
  });
}

function panicRow(c: CaseResult): PanicRow {
  const o = c.ours['8'];
  const pagesSaved = med(o, (r) => r.pages);
  const panicSeconds = med(o, (r) => r.panic.wallSeconds);
  const stage1Seconds = med(o, (r) => r.panic.wallSeconds - c.startupSeconds);
  return {
    size: c.size,
    profile: c.profile,
    pagesSaved,
    panicSeconds,
    startupSeconds: c.startupSeconds,
    stage1Seconds,
    stage1MbPerSecond: (pagesSaved * PAGE_SIZE) / MB / stage1Seconds,
    panicMbPerSecond: (pagesSaved * PAGE_SIZE) / MB / panicSeconds,
    stage1StoredBytes: med(o, (r) => r.stage1Frames) * PAGE_SIZE,
    runs: o.length,
    baselines: c.baselines.map((b) => {
      const seconds = b.runs.length ? med(b.runs, (r) => r.wallSeconds) : null;
      return { tool: b.tool, seconds, mbPerSecond: seconds === null ? null : c.ramBytes / MB / seconds, outputBytes: b.outputBytes, runs: b.runs.length };
    }),
  };
}

// ---- output ---------------------------------------------------------------------------------------

function markdownTable(header: readonly string[], rows: readonly (readonly string[])[], rightFrom = 0): string {
  const rule = header.map((_, i) => (i >= rightFrom ? '---:' : '---'));
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(rule), ...rows.map(line)].join('\n') + '\n';
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const f2 = (n: number): string => n.toFixed(2);
const f1 = (n: number): string => n.toFixed(1);
const x2 = (n: number): string => `${n.toFixed(2)}x`;
const mibOrDash = (b: number | null): string => (b === null ? '-' : f1(b / MiB));

interface Machine {
  cpu: string;
  cores: number;
  ramBytes: number;
  kernel: string;
  node: string;
  makedumpfile: string;
  tools: Record<string, string>;
  tmpdir: string;
  loadAverageAtStart: number[];
}

function toolVersion(file: string): string {
  const r = spawnSync(file, ['--version'], { encoding: 'utf8' });
  if (r.error) return 'missing';
  return `${r.stdout}\n${r.stderr}`.split('\n').find((l) => l.trim() !== '')?.trim() ?? 'unknown';
}

function headerLines(m: Machine, s: Settings): string[] {
  const oursReps = s.oursRepsOverride !== undefined
    ? `x${s.oursRepsOverride} (PEERS_OURS_REPS)`
    : `x${OURS_REPS_SMALL} at <= 1 GiB, x1 above (a 4 GiB run of our pipeline takes minutes per level)`;
  return [
    `- machine: ${m.cpu}, ${m.cores} cores, ${(m.ramBytes / GiB).toFixed(1)} GiB RAM, Linux ${m.kernel}, node ${m.node}, ` +
      `makedumpfile ${m.makedumpfile}; temp files in ${m.tmpdir}`,
    `- load average at start: ${m.loadAverageAtStart.map((x) => x.toFixed(2)).join(' ')} ` +
      '(a shared machine: other jobs run beside this one, so times are noisy; the CPU columns and the JSON runs help judge that)',
    `- sizes ${s.sizes.map((x) => x.label).join(', ')}; profiles ${s.profiles.join(', ')}; seed ${SEED}; ` +
      `medians: makedumpfile and the compressors x${s.reps} each, ours ${oursReps}`,
    '- commands (each under `/usr/bin/time -v`: wall time measured around it, peak RSS = "Maximum resident set size"):',
    `  - set-up: \`node dist/src/cli/machine.js power-on --root R --mem SIZE --profile P --seed ${SEED}\`, then at once ` +
      '`node dist/src/cli/machine.js export-vmcore --root R -o vmcore` and `cp --sparse=always R/lib/machine/ram image`',
    `  - makedumpfile: \`makedumpfile -c -d D --message-level ${MDF_MESSAGE_LEVEL} vmcore out\` (out deleted before each run; ` +
      'the message level only drops the progress bar and adds the page report)',
    '  - ours (LKCD_NO_PROGRESS=1): `DUMP_LEVEL=L` in R/etc/sysconfig/dump; `node dist/lkcd/main.js config --root R` (arms; not counted); ' +
      `counted: \`node dist/src/cli/machine.js panic --root R ${MESSAGE}\` (stage 1 + kexec boot) + ` +
      '`node dist/lkcd/main.js config --root R` (writeout to DUMPDEV) + `node dist/lkcd/main.js save --root R`; ' +
      'every run but the first powers on again with the same seed, its RAM checked equal to the image with `cmp`',
    `  - compressors: ${TOOLS.map((t) => `\`${t.file} ${t.args.join(' ')} image > /dev/null\``).join(', ')} ` +
      `(${TOOLS.map((t) => `${t.file}: ${m.tools[t.file]}`).join('; ')}); sizes from one more run into \`wc -c\``,
    `- size: ours = DUMPDIR/N/dump.N (LKCD v9: headers + one record per page); makedumpfile = its output file (kdump-compressed: ` +
      `headers, two bitmaps, a 24-byte descriptor per page). Both deflate each page as its own zlib stream at level 1 ` +
      `(makedumpfile compress2 Z_BEST_SPEED; ours DUMP_GZIP_DEFAULT_LEVEL ${DUMP_GZIP_DEFAULT_LEVEL}) and keep a page raw when it does not shrink`,
    '- time: ours = panic + writeout + save (three processes, Node start-up in each); makedumpfile = its one run on a vmcore file ' +
      '(in the page cache here, as our RAM image is). Peak RSS: ours = the largest of the three processes',
    '- level pairs:',
    ...PAIRS.map((p) => `  - ours ${p.level} (${p.levelName}) vs makedumpfile -d ${p.d}: ${p.why}`),
  ];
}

function render(m: Machine, s: Settings, cases: CaseResult[], peers: PeerRow[], steps: StepRow[], panics: PanicRow[]): string {
  const out: string[] = ['# lkcd-softboot vs makedumpfile and the stream compressors', '', ...headerLines(m, s), ''];

  out.push('## Dump size, time and peak RSS against makedumpfile (medians)', '');
  out.push('ratio = ours / makedumpfile (below 1: ours is smaller or faster). pages = pages in the dump; ' +
    '"zero dropped" = zero pages makedumpfile excluded (ours keeps them); "ours extra" = ours - makedumpfile - zero dropped: ' +
    'negative at level 8, where ours leaves out the dumper\'s own frames (config block, buffer: allocated by the arming ' +
    '`lkcd config`, after the export), positive at levels 4 and 2, where ours also holds the kexec kernel that the arming ' +
    '`lkcd config` preloads into kernel pages, which were free pages in the vmcore.', '');
  out.push(markdownTable(
    ['size', 'profile', 'level pair', 'ours bytes', 'makedumpfile bytes', 'size ratio', 'ours s', 'makedumpfile s', 'time ratio',
      'ours peak RSS MiB', 'makedumpfile peak RSS MiB', 'ours CPU s', 'makedumpfile CPU s', 'pages ours / makedumpfile (zero dropped)', 'ours extra pages', 'runs ours / makedumpfile'],
    peers.map((r) => [
      r.size, r.profile, `${r.ourLevel} ${r.ourLevelName} vs -d ${r.makedumpfileD}`, int(r.oursBytes), int(r.makedumpfileBytes), x2(r.sizeRatio),
      f2(r.oursSeconds), f2(r.makedumpfileSeconds), x2(r.timeRatio), f1(r.oursPeakRssMiB), f1(r.makedumpfilePeakRssMiB),
      f2(r.oursCpuSeconds), f2(r.makedumpfileCpuSeconds),
      `${int(r.oursPages)} / ${int(r.makedumpfilePages)} (${int(r.makedumpfileZeroPagesExcluded)})`,
      int(r.oursPages - r.makedumpfilePages - r.makedumpfileZeroPagesExcluded), `${r.oursRuns} / ${r.makedumpfileRuns}`,
    ]),
    3,
  ));

  out.push('', '## Our pipeline by step (medians, wall s and peak RSS MiB)', '');
  out.push(markdownTable(
    ['size', 'profile', 'level', 'arm s (not counted)', 'panic s', 'writeout s', 'save s', 'total s', 'panic RSS', 'writeout RSS', 'save RSS', 'runs'],
    steps.map((r) => [
      r.size, r.profile, String(r.level), f2(r.armSeconds), f2(r.panicSeconds), f2(r.writeoutSeconds), f2(r.saveSeconds), f2(r.totalSeconds),
      f1(r.panicPeakRssMiB), f1(r.writeoutPeakRssMiB), f1(r.savePeakRssMiB), String(r.runs),
    ]),
    2,
  ));

  out.push('', '## Panic path: stage 1 against gzip / zstd / lz4 -1 over the same image (medians)', '');
  out.push('Ours at level 8 (all RAM). stage 1 s = `machine panic` wall minus the fastest `machine status` (Node start-up and ' +
    'opening the machine), so it still holds the kexec boot; the tool prints no stage-1 time of its own. ' +
    'MB/s = pages saved x 4096 / s for ours, image bytes / s for the compressors (MB = 10^6 bytes). ' +
    'Sizes: ours = frames the dump occupies in RAM after stage 1; the compressors make one stream over the whole image ' +
    '(windows across pages: a bound a per-page format cannot reach).', '');
  const names = TOOLS.map((t) => t.name);
  out.push(markdownTable(
    ['size', 'profile', 'pages saved', 'panic s', 'startup s', 'stage 1 s', 'ours stage-1 MB/s', 'ours panic MB/s',
      ...names.map((n) => `${n} MB/s`), 'stage 1 / gzip time', 'ours MiB', ...names.map((n) => `${n} MiB`), 'runs ours / tools'],
    panics.map((r) => {
      const gz = r.baselines.find((b) => b.tool === 'gzip -1');
      return [
        r.size, r.profile, int(r.pagesSaved), f2(r.panicSeconds), f2(r.startupSeconds), f2(r.stage1Seconds),
        f1(r.stage1MbPerSecond), f1(r.panicMbPerSecond),
        ...r.baselines.map((b) => (b.mbPerSecond === null ? '-' : f1(b.mbPerSecond))),
        gz?.seconds ? x2(r.stage1Seconds / gz.seconds) : '-',
        f1(r.stage1StoredBytes / MiB), ...r.baselines.map((b) => mibOrDash(b.outputBytes)),
        `${r.runs} / ${r.baselines[0]?.runs ?? 0}`,
      ];
    }),
    2,
  ));
  for (const b of cases[0]?.baselines ?? []) if (b.missing) out.push(`baseline ${b.tool} skipped: ${b.missing}`);
  const total = cases.reduce((t, c) => t + c.elapsedSeconds, 0);
  out.push('', `- elapsed: ${cases.map((c) => `${c.size} ${c.profile} ${(c.elapsedSeconds / 60).toFixed(1)} min`).join(', ')}; ` +
    `total ${(total / 60).toFixed(1)} min; load average at the end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  return out.join('\n') + '\n';
}

const benchmark: Benchmark = {
  name: 'peers',
  description: 'our dump pipeline vs makedumpfile on our ELF export of the same RAM (size, time, peak RSS at matching ' +
    'filter levels), and stage 1 vs gzip/zstd/lz4 -1 over the image; 1G and 4G x database and fileserver, seed 1',
  run(ctx: BenchContext): BenchOutcome {
    const s = settings();
    requireGnuTime();
    const machine: Machine = {
      cpu: cpuModel(),
      cores: os.cpus().length,
      ramBytes: os.totalmem(),
      kernel: os.release(),
      node: process.version,
      makedumpfile: makedumpfileVersion(),
      tools: Object.fromEntries(TOOLS.map((t) => [t.file, toolVersion(t.file)])),
      tmpdir: os.tmpdir(),
      loadAverageAtStart: os.loadavg(),
    };
    process.stdout.write(`${headerLines(machine, s).join('\n')}\n`);

    const cases: CaseResult[] = [];
    for (const size of s.sizes) {
      for (const profile of s.profiles) cases.push(measureCase(ctx, s, size, profile));
    }
    const peers = cases.flatMap(peerRows);
    const steps = cases.flatMap(stepRows);
    const panics = cases.map(panicRow);
    const markdown = render(machine, s, cases, peers, steps, panics);

    const file = ctx.writeResults('peers.json', {
      benchmark: 'peers',
      date: new Date().toISOString(),
      machine,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      settings: {
        sizes: s.sizes.map((x) => x.label), profiles: s.profiles, seed: SEED, reps: s.reps, oursReps: cases.map((c) => c.oursReps),
        makedumpfileMessageLevel: MDF_MESSAGE_LEVEL, gzipLevel: DUMP_GZIP_DEFAULT_LEVEL,
      },
      pairs: PAIRS,
      baselines: TOOLS.map((t) => `${t.file} ${t.args.join(' ')}`),
      peers,
      steps,
      panicPath: panics,
      cases,
    });
    const mdFile = path.join(path.dirname(file), 'peers.md');
    fs.writeFileSync(mdFile, markdown);
    // The header was printed first; print the rest (the tables).
    process.stdout.write(`\n${markdown.slice(markdown.indexOf('## '))}`);
    process.stdout.write(`results: ${file}\nmarkdown: ${mdFile}\n`);
    return { pass: true };
  },
};

export default benchmark;
