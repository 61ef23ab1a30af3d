/**
 * Helpers of the atomic-step, lock and held-dump tests: the ground truth of
 * a panic taken on a twin of the machine (the panic is deterministic, so a
 * copy of the root panicked in-process with the beforeDump hook shows RAM
 * exactly as the CLI's panic on the original will dump it), the machine's
 * own files a step must not leave behind, and the exit statuses of the
 * degraded results.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { copyRoot, panicWithTruth, type Truth } from './lkcd.js';
import { BIN, REPO } from './cli.js';

/** Exit statuses (src/cli/exit.ts). */
export const EXIT_DUMP_TRUNCATED = 3;
export const EXIT_DUMP_LOST = 6;
export const EX_TEMPFAIL_BUSY = 75;

/** RAM as the dump of `machine panic MESSAGE` on `dir` must show it, taken on a twin in `twin`. */
export function truthOfPanic(dir: string, twin: string, message: string): Truth {
  copyRoot(dir, twin);
  const { truth } = panicWithTruth(twin, message);
  fs.rmSync(twin, { recursive: true, force: true });
  return truth;
}

/** The hardware files a machine keeps under lib/machine/ between commands. */
const HARDWARE_FILES = ['ram', 'state.json', 'rtc', 'devices'];

/** Files of an unfinished step or a held lock under lib/machine/ (none may be left once commands are done). */
export function machineLeftovers(dir: string): string[] {
  const m = path.join(dir, 'lib', 'machine');
  if (!fs.existsSync(m)) return [];
  // The PCI devices' hardware files (lib/machine/devices/<bdf>) belong there; a temporary among them does not.
  const dev = path.join(m, 'devices');
  const strayDev = fs.existsSync(dev) ? fs.readdirSync(dev).filter((f) => f.startsWith('.')).map((f) => `devices/${f}`) : [];
  return [...fs.readdirSync(m).filter((f) => !HARDWARE_FILES.includes(f)), ...strayDev].sort();
}

export interface TimedRun { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }

/**
 * Runs a built CLI; with `killAfterMs`, sends SIGKILL that long after the
 * start (if it is still running). Resolves once the process is reaped.
 */
export function runKilled(tool: keyof typeof BIN, root: string, args: readonly string[], killAfterMs: number | null, env: Record<string, string> = {}): Promise<TimedRun> {
  const base: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LKCD_') && k !== 'NODE_OPTIONS') base[k] = v;
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [BIN[tool], '--root', root, ...args], { cwd: REPO, env: { ...base, LKCD_NO_PROGRESS: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    const timer = killAfterMs === null ? null : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}
