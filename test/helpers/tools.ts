import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

/** Absolute path of a tool on PATH (or the given absolute path), or null. */
export function findTool(name: string): string | null {
  if (name.startsWith('/')) return fs.existsSync(name) ? name : null;
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = `${dir}/${name}`;
    if (dir && fs.existsSync(p)) return p;
  }
  return null;
}

export interface ToolRun { status: number | null; stdout: string; stderr: string }

/** Runs a real tool under `timeout` (lockless-log mistakes make some tools loop forever). */
export function runTool(tool: string, args: string[], seconds = 120, opts: { cwd?: string } = {}): ToolRun {
  const r = spawnSync('timeout', [String(seconds), tool, ...args], { encoding: 'latin1', cwd: opts.cwd, maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A describe/it title suffix naming what a skipped test needs. */
export function needs(...tools: string[]): { missing: string[]; reason: string } {
  const missing = tools.filter((t) => findTool(t) === null);
  return { missing, reason: missing.length ? ` [SKIPPED: ${missing.join(', ')} not installed; .ci/run installs it]` : '' };
}

/**
 * Whether a test needing `tools` (and root, with `root: true`) should be
 * skipped: yes when one is missing, unless LKCD_REQUIRE_TOOLS=1, where the
 * test runs and fails on what is missing instead of passing by skipping.
 */
export function skipWithout(tools: string[], opts: { root?: boolean } = {}): boolean {
  if (process.env.LKCD_REQUIRE_TOOLS === '1') return false;
  return tools.some((t) => findTool(t) === null) || (opts.root === true && process.getuid?.() !== 0);
}

/** Fails (with the names) when a tool the test needs is missing: the first step of a test that was not skipped. */
export function requireTools(tools: string[], opts: { root?: boolean } = {}): void {
  const missing = tools.filter((t) => findTool(t) === null);
  if (opts.root && process.getuid?.() !== 0) missing.push('root privileges');
  if (missing.length) throw new Error(`needs ${missing.join(', ')} (LKCD_REQUIRE_TOOLS=1 makes this a failure, not a skip)`);
}
