/**
 * The real tools the interop tests compare against, and the one gate every
 * test that needs one goes through: without the tool the test is skipped
 * with a title naming it; with LKCD_REQUIRE_TOOLS=1 (set by .ci/run) it
 * runs and fails with a message naming it, so CI cannot go green without
 * the tools.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { it } from 'vitest';

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

/** A tool a test needs that is not a program on PATH: `check` says why it is missing, or null. */
export interface ToolProbe {
  name: string;
  check(): string | null;
}

/** The Python interpreter the libkdumpfile tests run (Debian's python3-libkdumpfile installs for it). */
export const PYTHON = SYSTEM_PYTHON;

/** Debian python3-libkdumpfile: an independent LKCD reader. */
export const LIBKDUMPFILE: ToolProbe = {
  name: 'python3-libkdumpfile',
  check: () => {
    if (!fs.existsSync(PYTHON)) return `${PYTHON} not found`;
    const r = spawnSync(PYTHON, ['-c', 'import kdumpfile'], { encoding: 'utf8', timeout: 60_000 });
    return r.status === 0 ? null : 'python3 cannot import kdumpfile';
  },
};

/** The variable that turns a missing tool from a skip into a failure. */
export const REQUIRE_TOOLS_VAR = 'LKCD_REQUIRE_TOOLS';

type Body = () => void | Promise<void>;

/** `it`, gated on the tools of a ToolNeed. */
export interface GatedIt {
  (name: string, fn: Body): void;
  /** As vitest's `it.for`: one test per case, `$field` in the name, the case as the argument. */
  for<T>(cases: readonly T[]): (name: string, fn: (c: T) => void | Promise<void>) => void;
}

export interface ToolNeed {
  /** The tools that are missing, by name. */
  readonly missing: string[];
  /** Whether a missing tool fails (LKCD_REQUIRE_TOOLS=1) rather than skips. */
  readonly required: boolean;
  /** True when the tests skip: something is missing and nothing requires it. */
  readonly skip: boolean;
  /** A title suffix naming what is missing ('' when nothing is). */
  readonly reason: string;
  /** Throws an error naming what is missing; nothing when all is there. */
  assert(): void;
  /** A test that is skipped (title naming the tool) or, when required, fails naming it. */
  readonly it: GatedIt;
}

/**
 * What a group of tests needs: programs on PATH by name (or absolute path),
 * or probes. `env` is where LKCD_REQUIRE_TOOLS is read (the process's own).
 */
export function toolNeed(tools: ReadonlyArray<string | ToolProbe>, env: NodeJS.ProcessEnv = process.env): ToolNeed {
  const why: string[] = [];
  const missing: string[] = [];
  for (const t of tools) {
    const probe: ToolProbe = typeof t !== 'string' ? t
      : t.startsWith('python3:') ? { name: t, check: () => (hasPythonModule(t.slice('python3:'.length)) ? null : `${t} not installed`) }
      : { name: t, check: () => (findTool(t) ? null : `${t} not installed`) };
    const reason = probe.check();
    if (reason !== null) {
      missing.push(probe.name);
      why.push(reason === `${probe.name} not installed` ? reason : `${probe.name} (${reason})`);
    }
  }
  const required = env[REQUIRE_TOOLS_VAR] === '1';
  const skip = missing.length > 0 && !required;
  const reason = missing.length === 0 ? ''
    : required ? ` [REQUIRED: ${why.join(', ')}]`
    : ` [SKIPPED: ${why.join(', ')}; .ci/run installs it]`;
  const assert = (): void => {
    if (missing.length) {
      throw new Error(`required tool missing: ${why.join(', ')}; ${REQUIRE_TOOLS_VAR}=1 makes a missing interop tool a failure (.ci/run installs them)`);
    }
  };
  const gated = ((name: string, fn: Body): void => {
    it.skipIf(skip)(`${name}${reason}`, () => { assert(); return fn(); });
  }) as GatedIt;
  gated.for = <T>(cases: readonly T[]) => (name: string, fn: (c: T) => void | Promise<void>): void => {
    it.skipIf(skip).for(cases as T[])(`${name}${reason}`, (c) => { assert(); return fn(c); });
  };
  return { missing, required, skip, reason, assert, it: gated };
}

/** toolNeed for the running process: `needs('crash', 'readelf')`, `needs(LIBKDUMPFILE)`. */
export function needs(...tools: Array<string | ToolProbe>): ToolNeed {
  return toolNeed(tools);
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
