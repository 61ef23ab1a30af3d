import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const GNU_TIME = '/usr/bin/time';
const MAX_RSS_LINE = /Maximum resident set size \(kbytes\): (\d+)/;

/** How peak RSS is measured: GNU time's -v report, or the wrapper's own getrusage. */
export type RssMethod = 'gnu-time -v' | 'process.resourceUsage (wrapper)';

export interface Measurement {
  readonly command: string;
  readonly wallSeconds: number;
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface NodeMeasurement extends Measurement {
  readonly peakRssKiB: number;
  readonly rssMethod: RssMethod;
  /** User + system CPU seconds (GNU time's report), null from the wrapper. */
  readonly cpuSeconds: number | null;
}

/** User + system CPU seconds from a GNU time -v report, or null. */
export function cpuSecondsOf(report: string): number | null {
  const u = /User time \(seconds\): ([\d.]+)/.exec(report);
  const s = /System time \(seconds\): ([\d.]+)/.exec(report);
  return u && s ? Number(u[1]) + Number(s[1]) : null;
}

/**
 * Wall time and user + system CPU seconds of a command whose output goes to
 * `stdoutFd` (GNU time -v around it; cpuSeconds null without GNU time).
 */
export function timeWithCpu(file: string, args: readonly string[], stdoutFd: number): { wallSeconds: number; cpuSeconds: number | null; status: number | null; stderr: string } {
  const shown = [file, ...args].join(' ');
  const gnu = rssMethod() === 'gnu-time -v';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-bench-cpu-'));
  const report = path.join(dir, 'report');
  try {
    const t0 = performance.now();
    const r = gnu
      ? spawnSync(GNU_TIME, ['-v', '-o', report, file, ...args], { stdio: ['ignore', stdoutFd, 'pipe'] })
      : spawnSync(file, args, { stdio: ['ignore', stdoutFd, 'pipe'] });
    const wallSeconds = (performance.now() - t0) / 1000;
    if (r.error) throw new Error(`${shown}: ${r.error.message}`);
    return { wallSeconds, cpuSeconds: gnu ? cpuSecondsOf(readIfPresent(report)) : null, status: r.status, stderr: r.stderr.toString() };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

let method: RssMethod | undefined;

/** GNU time when /usr/bin/time runs and reports peak RSS, else the wrapper. */
export function rssMethod(): RssMethod {
  if (method) return method;
  const probe = spawnSync(GNU_TIME, ['-v', 'true'], { encoding: 'utf8' });
  method = probe.status === 0 && MAX_RSS_LINE.test(probe.stderr) ? 'gnu-time -v' : 'process.resourceUsage (wrapper)';
  return method;
}

function run(file: string, args: readonly string[], shown: string, opts: RunOptions): Measurement {
  const t0 = performance.now();
  const r = spawnSync(file, args, {
    cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8', maxBuffer: 64 << 20,
  });
  const wallSeconds = (performance.now() - t0) / 1000;
  if (r.error) throw new Error(`${shown}: ${r.error.message}`);
  if (r.signal) throw new Error(`${shown}: killed by ${r.signal}`);
  return { command: shown, wallSeconds, status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Wall time of one command, run to completion. */
export function timeCommand(file: string, args: readonly string[], opts: RunOptions = {}): Measurement {
  return run(file, args, [file, ...args].join(' '), opts);
}

/** Wall time and peak RSS of a Node script run as a child process. */
export function measureNode(script: string, args: readonly string[], opts: RunOptions = {}): NodeMeasurement {
  const shown = ['node', path.basename(script), ...args].join(' ');
  const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-bench-rusage-')), 'report');
  try {
    if (rssMethod() === 'gnu-time -v') {
      const m = run(GNU_TIME, ['-v', '-o', report, process.execPath, script, ...args], shown, opts);
      const text = readIfPresent(report);
      const found = MAX_RSS_LINE.exec(text);
      if (!found) throw new Error(`${shown}: ${GNU_TIME} -v wrote no "Maximum resident set size" line`);
      return { ...m, peakRssKiB: Number(found[1]), rssMethod: 'gnu-time -v', cpuSeconds: cpuSecondsOf(text) };
    }
    // The wrapper is this directory's sibling in whichever form runs now (.js built, .ts under a loader).
    const here = fileURLToPath(import.meta.url);
    const wrapper = path.join(path.dirname(here), `rusage-wrapper${path.extname(here)}`);
    const m = run(process.execPath, [...process.execArgv, wrapper, report, script, ...args], shown, opts);
    const text = readIfPresent(report);
    if (!text) throw new Error(`${shown}: the rusage wrapper wrote no report`);
    return { ...m, peakRssKiB: (JSON.parse(text) as { maxRssKiB: number }).maxRssKiB, rssMethod: 'process.resourceUsage (wrapper)', cpuSeconds: null };
  } finally {
    fs.rmSync(path.dirname(report), { recursive: true, force: true });
  }
}

function readIfPresent(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Throws a one-line error unless the command exited 0. */
export function requireSuccess<M extends Measurement>(m: M): M {
  if (m.status !== 0) {
    const first = m.stderr.split('\n').find((l) => l.trim() !== '') ?? '(no stderr)';
    throw new Error(`${m.command}: exited ${m.status}: ${first}`);
  }
  return m;
}
