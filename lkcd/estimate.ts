/**
 * `lkcd estimate [--level L]`: what a panic now would dump, as kdumpctl
 * estimate, dumpadm -e and makedumpfile --mem-usage say it for theirs.
 * The figures come from src/dump/estimate.ts (stage 1's own plan and
 * sampler); this module prints them.
 */
import { UsageError } from '../src/codec/index.js';
import type { MachineRoot } from '../src/machine/index.js';
import { closeSystem, openSystem } from '../src/kernel/index.js';
import { estimateDump, type DumpEstimate } from '../src/dump/index.js';

const LEVEL_NAMES: Record<number, string> = { 1: 'DUMP_LEVEL_HEADER', 2: 'DUMP_LEVEL_KERN', 4: 'DUMP_LEVEL_USED', 8: 'DUMP_LEVEL_ALL_RAM' };

export function parseLevel(text: string | undefined): number | null {
  if (text === undefined) return null;
  const n = /^(0x[0-9a-f]+|\d+)$/i.test(text) ? Number(text) : NaN;
  if (!(n in LEVEL_NAMES)) throw new UsageError(`--level ${text} is not one of 1, 2, 4, 8 (DUMP_LEVEL_HEADER, _KERN, _USED, _ALL_RAM)`);
  return n;
}

/** Reads the running machine (changes nothing) and estimates; `level` keeps that level's row only. */
export function lkcdEstimate(root: MachineRoot, level: number | null): DumpEstimate {
  const sys = openSystem(root, { readOnly: true });
  try {
    const e = estimateDump(sys.kernel);
    return level === null ? e : { ...e, levels: e.levels.filter((l) => l.level === level) };
  } finally {
    closeSystem(sys);
  }
}

const mib = (b: number): string => `${(b / (1 << 20)).toFixed(1)} MiB`;

export function estimateText(e: DumpEstimate): string {
  const out: string[] = [];
  out.push(`${e.frames} frames of RAM; ${e.dumper_frames} are the dumper's own (never dumped)`);
  out.push('');
  out.push('CLASS     MAKEDUMPFILE    PASS      FRAMES      ZERO');
  for (const c of e.classes) out.push(`${c.class.padEnd(8)}  ${c.makedumpfile.padEnd(14)}  ${c.pass.padEnd(6)}  ${String(c.frames).padStart(8)}  ${String(c.zero).padStart(8)}`);
  out.push('');
  out.push(`PASS    MASK    FRAMES     FIXED  BYTES/PAGE  RATIO   (compression ${['none', 'RLE', 'GZIP'][e.compress]}, sampled)`);
  for (const p of e.passes) out.push(`${p.pass.padEnd(6)}  0x${p.mask.toString(16).padEnd(4)}  ${String(p.frames).padStart(6)}  ${String(p.fixed_frames).padStart(8)}  ${String(p.record_bytes).padStart(10)}  ${p.ratio.toFixed(2).padStart(5)}`);
  out.push('');
  out.push(`room at a panic: ${e.spare_frames} spare frames, ${mib(e.room_bytes)} for the dump in memory`);
  out.push('');
  out.push('LEVEL                   PAGES  COMPLETE  IN MEMORY   ON DEVICE');
  for (const l of e.levels) {
    const complete = l.complete ? 'yes' : `NO${l.dropped.length ? `: ${l.dropped.join(', ')} pass dropped, ${l.missing_pages} pages missing` : ': does not fit'}`;
    out.push(`${`${l.level} ${LEVEL_NAMES[l.level]}`.padEnd(20)}  ${String(l.pages).padStart(7)}  ${l.complete ? 'yes     ' : 'NO      '}  ${mib(l.memory_bytes).padStart(9)}  ${mib(l.device_bytes).padStart(10)}${l.complete ? '' : `  (${complete.slice(4)})`}`);
  }
  return out.join('\n') + '\n';
}
