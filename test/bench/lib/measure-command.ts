/**
 * Wall time, CPU time and peak RSS of any command (a native tool such as
 * makedumpfile or gzip, or a Node script run as `node script.js`), through
 * GNU time's -v report. measure.ts measures Node scripts only; this is its
 * counterpart for peers, with no fallback: without /usr/bin/time there is
 * no way to read a foreign child's peak RSS from Node, so it throws.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const GNU_TIME = '/usr/bin/time';
const MAX_RSS_LINE = /Maximum resident set size \(kbytes\): (\d+)/;
const USER_LINE = /User time \(seconds\): ([\d.]+)/;
const SYSTEM_LINE = /System time \(seconds\): ([\d.]+)/;

export interface CommandMeasurement {
  /** The command as run, without the /usr/bin/time wrapper. */
  readonly command: string;
  /** Wall time of the whole child (GNU time's own start-up, microseconds, included). */
  readonly wallSeconds: number;
  readonly userSeconds: number;
  readonly systemSeconds: number;
  readonly peakRssKiB: number;
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CommandOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Send the command's stdout to /dev/null instead of capturing it (for compressors writing to stdout). */
  readonly stdoutToDevNull?: boolean;
  /** How the command is shown in reports; default file and arguments joined by spaces. */
  readonly shown?: string;
}

let checked = false;

/** Throws unless /usr/bin/time -v runs and reports peak RSS. */
export function requireGnuTime(): void {
  if (checked) return;
  const probe = spawnSync(GNU_TIME, ['-v', 'true'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0 || !MAX_RSS_LINE.test(probe.stderr)) {
    throw new Error(`${GNU_TIME} -v is needed to measure peak RSS of native tools (install the 'time' package)`);
  }
  checked = true;
}

/** Runs `file args` under /usr/bin/time -v to completion; does not check its exit status (see requireOk). */
export function measureCommand(file: string, args: readonly string[], opts: CommandOptions = {}): CommandMeasurement {
  requireGnuTime();
  const shown = opts.shown ?? [file, ...args].join(' ');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-bench-time-'));
  const report = path.join(dir, 'report');
  const devNull = opts.stdoutToDevNull ? fs.openSync('/dev/null', 'w') : undefined;
  try {
    const t0 = performance.now();
    const r = spawnSync(GNU_TIME, ['-v', '-o', report, file, ...args], {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      encoding: 'utf8',
      maxBuffer: 64 << 20,
      stdio: ['ignore', devNull ?? 'pipe', 'pipe'],
    });
    const wallSeconds = (performance.now() - t0) / 1000;
    if (r.error) throw new Error(`${shown}: ${r.error.message}`);
    if (r.signal) throw new Error(`${shown}: killed by ${r.signal}`);
    const text = fs.existsSync(report) ? fs.readFileSync(report, 'utf8') : '';
    const rss = MAX_RSS_LINE.exec(text);
    if (!rss) throw new Error(`${shown}: ${GNU_TIME} -v wrote no "Maximum resident set size" line`);
    return {
      command: shown,
      wallSeconds,
      userSeconds: Number(USER_LINE.exec(text)?.[1] ?? NaN),
      systemSeconds: Number(SYSTEM_LINE.exec(text)?.[1] ?? NaN),
      peakRssKiB: Number(rss[1]),
      status: r.status,
      stdout: r.stdout ?? '',
      stderr: r.stderr ?? '',
    };
  } finally {
    if (devNull !== undefined) fs.closeSync(devNull);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Throws a one-line error unless the command exited 0. */
export function requireOk(m: CommandMeasurement): CommandMeasurement {
  if (m.status !== 0) {
    const first = [m.stderr, m.stdout].join('\n').split('\n').find((l) => l.trim() !== '') ?? '(no output)';
    throw new Error(`${m.command}: exited ${m.status}: ${first}`);
  }
  return m;
}

/** The median of a non-empty list (mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
