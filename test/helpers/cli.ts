/**
 * The built CLIs (machine, lkcd, kexec) as an admin runs them, for pipeline
 * tests that mix library steps (crash hooks, RAM edits) with the commands:
 * each run is a child process with --root, no LKCD_* variables from the
 * caller's environment except those a test passes, and no progress bars.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const BIN = {
  machine: path.join(REPO, 'dist', 'src', 'cli', 'machine.js'),
  lkcd: path.join(REPO, 'dist', 'lkcd', 'main.js'),
  kexec: path.join(REPO, 'dist', 'kexec', 'main.js'),
  kdumpctl: path.join(REPO, 'dist', 'kexec', 'kdumpctl.js'),
} as const;
export type Tool = keyof typeof BIN;

/** sysexits values of the exit-code table (STYLE section 3). */
export const EX_USAGE = 64;
export const EX_DATAERR = 65;
export const EX_NOINPUT = 66;
export const EX_IOERR = 74;

export interface RunResult { status: number | null; stdout: string; stderr: string }

/** Runs a built CLI on `root`; `env` adds variables (fault injection) to a clean environment. */
export function runTool(tool: Tool, root: string, args: readonly string[], env: Record<string, string> = {}): RunResult {
  const base: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LKCD_') && k !== 'NODE_OPTIONS') base[k] = v;
  const r = spawnSync(process.execPath, [BIN[tool], '--root', root, ...args], {
    cwd: REPO, env: { ...base, LKCD_NO_PROGRESS: '1', ...env }, encoding: 'utf8', timeout: 120_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Asserts exit 0 with nothing on stderr; returns stdout. */
export function expectOk(r: RunResult): string {
  expect(r.stderr, `stdout: ${r.stdout}`).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

/** Runs and asserts success; returns stdout. */
export function okRun(tool: Tool, root: string, args: readonly string[], env: Record<string, string> = {}): string {
  return expectOk(runTool(tool, root, args, env));
}

/**
 * Asserts a clean failure: `status`, exactly one stderr line starting
 * "<tool>: ", no stack or uncaught-error header, every name in the line.
 * Returns the line.
 */
export function expectCleanFailure(r: RunResult, tool: Tool, status: number, ...names: string[]): string {
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines, `stderr was:\n${r.stderr}`).toHaveLength(1);
  const line = lines[0];
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toMatch(/^(\w+)?Error: /m);
  expect(r.stderr).not.toMatch(/^node:internal/m);
  expect(line).not.toContain('internal error');
  expect(line.startsWith(`${tool}: `), line).toBe(true);
  for (const n of names) expect(line).toContain(n);
  expect(r.status, `stderr: ${line}`).toBe(status);
  return line;
}

function newestTs(dir: string): number {
  let newest = 0;
  for (const name of fs.readdirSync(dir, { recursive: true }) as string[]) {
    if (name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(path.join(dir, name)).mtimeMs);
  }
  return newest;
}

/** Builds dist/ when a CLI is missing or older than a source file under src/, lkcd/ or kexec/. */
export function ensureBuilt(): void {
  const newest = Math.max(...['src', 'lkcd', 'kexec'].map((d) => newestTs(path.join(REPO, d))));
  const stale = Object.values(BIN).some((f) => !fs.existsSync(f) || fs.statSync(f).mtimeMs < newest);
  if (!stale) return;
  const r = spawnSync('npx', ['tsc', '-p', '.'], { cwd: REPO, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npx tsc -p . failed (status ${r.status}):\n${r.stdout}${r.stderr}`);
}
