import fs from 'node:fs';
import { UsageError } from '../codec/index.js';

/** Longest package.json read for --version. */
const PACKAGE_JSON_MAX_BYTES = 1 << 20;

/** `NAME (lkcd-softboot) VERSION`, for every CLI's --version, from the checkout's package.json. */
export function versionText(cli: string): string {
  // dist/src/cli/usage.js -> the checkout's package.json.
  const file = new URL('../../../package.json', import.meta.url);
  let pkg: { name?: string; version?: string } = {};
  try {
    const text = fs.readFileSync(file, 'utf8');
    if (text.length <= PACKAGE_JSON_MAX_BYTES) pkg = JSON.parse(text) as typeof pkg;
  } catch { /* a copy of dist/ without package.json: the version is unknown, not an error */ }
  return `${cli} (${pkg.name ?? 'lkcd-softboot'}) ${pkg.version ?? 'unknown'}`;
}

/** Levenshtein distance, bounded: words longer than 64 characters are not compared. */
export function editDistance(a: string, b: string): number {
  if (a.length > 64 || b.length > 64) return Math.max(a.length, b.length);
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/**
 * The known word nearest to `word`, when it is a near miss (a typo, a
 * dropped or swapped letter): at most a third of the word's letters off,
 * at least one. Null when nothing is that close.
 */
export function didYouMean(word: string, known: readonly string[]): string | null {
  const limit = Math.max(1, Math.floor(word.length / 3));
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(word.toUpperCase() === word ? word : word.toLowerCase(), k.toUpperCase() === k ? k : k.toLowerCase());
    if (d < bestD) { best = k; bestD = d; }
  }
  return bestD <= limit ? best : null;
}

/**
 * yargs' failure message, made one line that names what was wrong: an
 * unknown command becomes "unknown command 'X' (did you mean 'Y'?)", with
 * the list of commands; other messages are kept as yargs words them.
 */
export function usageFailure(cli: string, msg: string, commands: readonly string[], args: readonly string[]): UsageError {
  const m = /^Unknown arguments?: (.+)$/.exec(msg);
  // The first word that is neither an option nor an option's value: the command yargs did not know.
  const first = args.find((a, i) => !a.startsWith('-') && !(i > 0 && /^--(root)$/.test(args[i - 1])));
  if (m && first !== undefined && !commands.includes(first) && m[1].split(', ').includes(first)) {
    const near = didYouMean(first, commands);
    return new UsageError(`unknown command '${first}'${near ? ` (did you mean '${near}'?)` : ''}; the commands are: ${commands.join(', ')} (see ${cli} --help)`);
  }
  return new UsageError(msg);
}
