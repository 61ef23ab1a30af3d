/**
 * Runs every test/bench/*.bench.ts in file-name order, or only those whose
 * name contains one of the arguments:
 *
 *   npm run bench                  all of them
 *   npm run bench -- power-on      just power-on.bench.ts
 *
 * Built by `tsc -p test/bench` into dist/test/bench/, next to the CLI it
 * measures. A benchmark prints its table on stdout; progress goes to stderr
 * only on a terminal. Exit status: 0 when every benchmark ran and passed,
 * 1 when one failed or missed its target, 130 on Ctrl-C.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createContext, findRepo, type Benchmark } from './lib/bench.js';

const SUFFIX = '.bench.ts';

function isBenchmark(x: unknown): x is Benchmark {
  const b = x as Partial<Benchmark> | undefined;
  return typeof b?.name === 'string' && typeof b.run === 'function';
}

async function main(): Promise<number> {
  const repo = findRepo();
  const sourceDir = path.join(repo, 'test', 'bench');
  const here = fileURLToPath(import.meta.url);
  // Built: import the .js next to this file. Under a TypeScript loader: the .ts itself.
  const ext = path.extname(here);
  const filters = process.argv.slice(2);
  const files = fs.readdirSync(sourceDir)
    .filter((f) => f.endsWith(SUFFIX))
    .filter((f) => filters.length === 0 || filters.some((w) => f.includes(w)))
    .sort();
  if (files.length === 0) {
    process.stderr.write(`bench: no ${sourceDir}/*${SUFFIX}${filters.length ? ` matching ${filters.join(', ')}` : ''}\n`);
    return 1;
  }

  const tempDirs: string[] = [];
  const ctx = createContext(repo, tempDirs);
  if (!fs.existsSync(ctx.machineJs)) {
    process.stderr.write(`bench: ${ctx.machineJs} is missing (run npx tsc -p . first)\n`);
    return 1;
  }

  let interrupted = false;
  // Ctrl-C reaches the measured child too; handling it here lets the running
  // benchmark's cleanup remove its multi-GiB temporary root.
  process.on('SIGINT', () => { interrupted = true; });

  let failed = 0;
  for (const f of files) {
    const modulePath = path.join(path.dirname(here), f.slice(0, -'.ts'.length) + ext);
    if (!fs.existsSync(modulePath)) {
      process.stderr.write(`bench: ${modulePath} is missing (run tsc -p test/bench)\n`);
      failed++;
      continue;
    }
    const mod = (await import(pathToFileURL(modulePath).href)) as { default?: unknown };
    if (!isBenchmark(mod.default)) {
      process.stderr.write(`bench: ${f}: the default export is not a Benchmark ({ name, description, run })\n`);
      failed++;
      continue;
    }
    const b = mod.default;
    process.stdout.write(`\n== ${b.name}: ${b.description}\n`);
    try {
      const outcome = await b.run(ctx);
      if (!outcome.pass) failed++;
    } catch (e) {
      process.stderr.write(`bench: ${b.name}: ${(e as Error).message}\n`);
      failed++;
    } finally {
      for (const d of tempDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
    }
    if (interrupted) return 130;
  }
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main();
