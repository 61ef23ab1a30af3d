import { UsageError } from './errors.js';

/**
 * Parses a size the way the kernel's memparse() does: a number (decimal, or
 * 0x hex) with an optional K, M, G or T suffix (binary multiples), plus an
 * optional trailing "iB"/"B".
 */
export function parseSize(text: string, what = 'size'): bigint {
  const m = /^\s*(0x[0-9a-f]+|\d+)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new UsageError(`${what} '${text}' is not a size (expected e.g. 16M, 1G, 0x4000000)`);
  const base = BigInt(m[1]);
  const shift = { '': 0n, k: 10n, m: 20n, g: 30n, t: 40n }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return base << shift;
}

/** Formats a byte count as the largest exact binary unit (1G, 512M, 4096). */
export function formatSize(bytes: bigint): string {
  for (const [suffix, shift] of [['T', 40n], ['G', 30n], ['M', 20n], ['K', 10n]] as const) {
    if (bytes >= 1n << shift && bytes % (1n << shift) === 0n) return `${bytes >> shift}${suffix}`;
  }
  return `${bytes}`;
}

/** Converts a bigint known to be small to a number, failing loudly if it is not. */
export function toSafeNumber(value: bigint, what: string): number {
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new UsageError(`${what} ${value} is out of range`);
  }
  return Number(value);
}

export function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

/** Parses a decimal (or 0x hex) integer option, naming the option and the text on failure. */
export function parseInteger(text: string, what: string): number {
  if (!/^\s*(0x[0-9a-f]+|\d+)\s*$/i.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`${what} '${text}' is not a non-negative integer`);
  }
  return Number(text);
}
