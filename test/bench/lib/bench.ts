import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * One benchmark: a file test/bench/<name>.bench.ts whose default export is
 * this object. run.ts runs them in file-name order.
 */
export interface Benchmark {
  readonly name: string;
  /** One line, printed above the benchmark's table. */
  readonly description: string;
  run(ctx: BenchContext): Promise<BenchOutcome> | BenchOutcome;
}

export interface BenchOutcome {
  /** False when a target the benchmark checks was missed; the run then exits non-zero. */
  readonly pass: boolean;
}

export interface BenchContext {
  /** The checkout: the directory holding package.json. */
  readonly repo: string;
  /** The built machine CLI, dist/src/cli/machine.js. */
  readonly machineJs: string;
  /** A status line on stderr, only when stderr is a terminal. */
  progress(message: string): void;
  /** A new empty directory under os.tmpdir(); removed by the runner if the benchmark leaves it. */
  tempDir(label: string): string;
  /** Writes `data` as JSON to <os.tmpdir()>/lkcd-softboot-bench/<file> and returns the path. */
  writeResults(file: string, data: unknown): string;
}

/** The directory holding package.json, found by climbing from this file (source or dist). */
export function findRepo(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
}

export const RESULTS_DIR = path.join(os.tmpdir(), 'lkcd-softboot-bench');

export function createContext(repo: string, tempDirs: string[]): BenchContext {
  const started = Date.now();
  return {
    repo,
    machineJs: path.join(repo, 'dist', 'src', 'cli', 'machine.js'),
    progress(message: string): void {
      if (!process.stderr.isTTY) return;
      process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${message}\n`);
    },
    tempDir(label: string): string {
      const d = fs.mkdtempSync(path.join(os.tmpdir(), `lkcd-bench-${label}-`));
      tempDirs.push(d);
      return d;
    },
    writeResults(file: string, data: unknown): string {
      fs.mkdirSync(RESULTS_DIR, { recursive: true });
      const out = path.join(RESULTS_DIR, file);
      fs.writeFileSync(out, JSON.stringify(data, null, 2) + '\n');
      return out;
    },
  };
}

/** A plain-text table: a header row, a rule, and right-aligned cells. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n';
}
