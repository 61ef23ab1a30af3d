import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

/** The Python that has the Debian python3-* modules (python3-libkdumpfile, python3-drgn). */
export const SYSTEM_PYTHON = '/usr/bin/python3';

/** Absolute path of a tool on PATH (or the given absolute path), or null. */
export function findTool(name: string): string | null {
  if (name.startsWith('/')) return fs.existsSync(name) ? name : null;
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = `${dir}/${name}`;
    if (dir && fs.existsSync(p)) return p;
  }
  return null;
}

/** Whether SYSTEM_PYTHON imports `module` (python3-drgn is "python3:drgn" in needs()). */
export function hasPythonModule(module: string): boolean {
  if (!fs.existsSync(SYSTEM_PYTHON)) return false;
  return spawnSync(SYSTEM_PYTHON, ['-c', `import ${module}`], { stdio: 'ignore', timeout: 60_000 }).status === 0;
}

export interface ToolRun { status: number | null; stdout: string; stderr: string }

/** Runs a real tool under `timeout` (lockless-log mistakes make some tools loop forever). */
export function runTool(tool: string, args: string[], seconds = 120, opts: { cwd?: string; input?: string } = {}): ToolRun {
  const r = spawnSync('timeout', [String(seconds), tool, ...args], {
    encoding: 'latin1', cwd: opts.cwd, maxBuffer: 256 << 20, input: opts.input, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * A describe/it title suffix naming what a skipped test needs. A tool is a
 * program on PATH, or "python3:MODULE" for a module of SYSTEM_PYTHON. With
 * LKCD_REQUIRE_TOOLS=1 (CI, where everything is installed) a missing tool
 * throws instead, so the suite fails rather than skips.
 */
export function needs(...tools: string[]): { missing: string[]; reason: string } {
  const missing = tools.filter((t) => (t.startsWith('python3:') ? !hasPythonModule(t.slice('python3:'.length)) : findTool(t) === null));
  if (missing.length && process.env.LKCD_REQUIRE_TOOLS === '1') {
    throw new Error(`LKCD_REQUIRE_TOOLS=1 and ${missing.join(', ')} not installed (.ci/run installs it)`);
  }
  return { missing, reason: missing.length ? ` [SKIPPED: ${missing.join(', ')} not installed; .ci/run installs it]` : '' };
}
