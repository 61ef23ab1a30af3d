/**
 * Runs a Node script in this process and, at exit, writes this process's
 * peak RSS to a file: the fallback for measure.ts where GNU time is absent.
 * Node reports resource usage only for itself, never for a child, so the
 * script to measure runs here instead of in a child.
 *
 *   node rusage-wrapper.js <out.json> <script.js> [args...]
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [outFile, script, ...args] = process.argv.slice(2);
if (!outFile || !script) {
  process.stderr.write('usage: rusage-wrapper <out.json> <script.js> [args...]\n');
  process.exit(64);
}
process.on('exit', () => {
  // maxRSS is in KiB, as getrusage(2) reports ru_maxrss on Linux.
  fs.writeFileSync(outFile, JSON.stringify({ maxRssKiB: process.resourceUsage().maxRSS }));
});
process.argv = [process.argv[0], path.resolve(script), ...args];
await import(pathToFileURL(path.resolve(script)).href);
