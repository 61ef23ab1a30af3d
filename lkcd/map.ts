/**
 * `lkcd map N`: physical memory of a saved LKCD dump as a picture, one cell
 * per frame: an SVG of two grids (each frame's page class, from the dump's
 * own mem_map; and what happened to it: saved compressed or raw, the
 * dumper's own, damaged, missing by reason, the next kernel's boot region,
 * not selected), with a legend of counts and the compression ratio per
 * class; or (--text) the same as ASCII strips for a terminal. Runs of equal
 * cells in a row are one <rect> carrying data-frames, so a 16 GiB machine
 * stays a few thousand elements, and every count can be read back.
 */
import { DumpError, UsageError } from '../src/codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../src/machine/index.js';
import { bootRegion, configForRam, forEachPageTypeRaw, page, PAGE_TYPES, type PageType } from '../src/kernel/index.js';
import { DUMP_DH_COMPRESSED, dump_page, kernelViewOf, LkcdDump } from '../src/dump/index.js';
import { DumpIndex } from '../src/store/index.js';
import type { OpenedDump } from './query.js';

/** What happened to a frame, in legend order. */
export const FRAME_FATES = [
  'saved-compressed', 'saved-raw', 'dumper', 'damaged', 'missing-did-not-fit', 'missing-pass-dropped',
  'missing-damaged-in-memory', 'missing-device', 'missing-unspecified', 'boot-region', 'not-selected',
] as const;
export type FrameFate = (typeof FRAME_FATES)[number];

const FATE_COLOR: Record<FrameFate, string> = {
  'saved-compressed': '#2e7d32', 'saved-raw': '#81c784', dumper: '#6a1b9a', damaged: '#000000',
  'missing-did-not-fit': '#e53935', 'missing-pass-dropped': '#fb8c00', 'missing-damaged-in-memory': '#8d0000',
  'missing-device': '#f06292', 'missing-unspecified': '#ff1744', 'boot-region': '#1e88e5', 'not-selected': '#e0e0e0',
};
const FATE_CHAR: Record<FrameFate, string> = {
  'saved-compressed': '#', 'saved-raw': 'R', dumper: 'd', damaged: 'X', 'missing-did-not-fit': 'F', 'missing-pass-dropped': 'P',
  'missing-damaged-in-memory': 'M', 'missing-device': 'V', 'missing-unspecified': '?', 'boot-region': 'b', 'not-selected': '.',
};
const CLASS_COLOR: Record<PageType | 'unknown', string> = {
  reserved: '#5d4037', kernel: '#c62828', slab: '#ef6c00', cache: '#1565c0', anon: '#00acc1', free: '#eeeeee', unknown: '#9e9e9e',
};
const CLASS_CHAR: Record<PageType | 'unknown', string> = { reserved: 'r', kernel: 'k', slab: 's', cache: 'c', anon: 'a', free: '.', unknown: '?' };
const CLASSES = [...PAGE_TYPES, 'unknown'] as const;
type FrameClass = (typeof CLASSES)[number];

export interface DumpMap {
  n: number;
  frames: number;
  /** Per frame: index into FRAME_FATES, and into CLASSES (the last is unknown: mem_map not readable there). */
  fate: Uint8Array;
  cls: Uint8Array;
  /** Why classes are unknown, when mem_map could not be read. */
  classError: string | null;
  counts: { fates: Record<FrameFate, number>; classes: Record<FrameClass, number> };
  /** Per class: frames saved, their bytes in dump.N (records with headers), PAGE_SIZE * saved / bytes. */
  ratios: Record<FrameClass, { saved: number; bytes: number; ratio: number | null }>;
}

/** Most frames a map covers (16 GiB of 4 KiB pages): the per-frame arrays are sized from dh_memory_size. */
const MAX_MAP_FRAMES = 1 << 22;

/** Reads the per-frame facts of dump N: fates from its index rows and ranges, classes from its own mem_map. */
export function buildDumpMap(o: OpenedDump, index: DumpIndex): DumpMap {
  if (!(o.dump instanceof LkcdDump)) throw new DumpError('UNSUPPORTED', `dump ${o.rec.n} is ${o.rec.format === 'diskdump' ? 'a kdump-compressed file' : 'an ELF vmcore'}: lkcd map draws LKCD dumps (their records say how each frame was saved)`);
  const memory = Number(o.dump.header.dh_memory_size);
  if (memory <= 0 || memory > MAX_MAP_FRAMES) throw new DumpError('UNSUPPORTED', `dump ${o.rec.n}: dh_memory_size ${memory} frames is outside what lkcd map draws (1 to ${MAX_MAP_FRAMES})`);
  const NOT_SELECTED = FRAME_FATES.indexOf('not-selected');
  const fate = new Uint8Array(memory).fill(NOT_SELECTED);
  const cls = new Uint8Array(memory).fill(CLASSES.indexOf('unknown'));
  // Frames the next kernel booted into (the default kernel for this RAM): not selected, and now overwritten.
  for (const r of bootRegion(BigInt(memory) * PAGE_SIZE_N, configForRam(BigInt(memory) * PAGE_SIZE_N))) {
    for (let p = Number(r.start / PAGE_SIZE_N); p < Math.min(memory, Number((r.end + PAGE_SIZE_N - 1n) / PAGE_SIZE_N)); p++) fate[p] = FRAME_FATES.indexOf('boot-region');
  }
  let classError: string | null = null;
  try {
    const view = kernelViewOf(o.dump, o.syms?.byName ?? null);
    if (view.memMap === null || view.maxPfn === null) throw new Error(`${view.source} does not name both mem_map and max_pfn`);
    const rd64 = (va: bigint): bigint => Buffer.from(view.memory.read('virt', va, 8)).readBigUInt64LE(0);
    const memMap = rd64(view.memMap);
    const maxPfn = rd64(view.maxPfn);
    const end = maxPfn < BigInt(memory) ? maxPfn : BigInt(memory);
    forEachPageTypeRaw((pfn, count) => view.memory.read('virt', memMap + pfn * BigInt(page.size), count * page.size), 0n, end, (pfn, t) => { cls[Number(pfn)] = CLASSES.indexOf(t); });
  } catch (e) {
    classError = e instanceof Error ? e.message : String(e);
  }
  const ratioAcc = Object.fromEntries(CLASSES.map((c) => [c, { saved: 0, bytes: 0, ratio: null as number | null }])) as DumpMap['ratios'];
  for (const row of index.iteratePages(o.rec.n)) {
    const p = Number(row.pfn);
    if (p < 0 || p >= memory) continue;
    fate[p] = FRAME_FATES.indexOf(row.flags & DUMP_DH_COMPRESSED ? 'saved-compressed' : 'saved-raw');
    const acc = ratioAcc[CLASSES[cls[p]]];
    acc.saved++;
    acc.bytes += row.size + dump_page.size;
  }
  for (const r of o.ranges) {
    const f: FrameFate = r.reason === 'dumper' ? 'dumper' : r.reason === 'damaged' ? 'damaged' : `missing-${r.reason ?? 'unspecified'}` as FrameFate;
    const idx = FRAME_FATES.indexOf(f) >= 0 ? FRAME_FATES.indexOf(f) : FRAME_FATES.indexOf('missing-unspecified');
    const hi = r.end_pfn < BigInt(memory) ? Number(r.end_pfn) : memory;
    for (let p = Number(r.start_pfn); p < hi; p++) fate[p] = idx;
  }
  const fates = Object.fromEntries(FRAME_FATES.map((f) => [f, 0])) as Record<FrameFate, number>;
  const classes = Object.fromEntries(CLASSES.map((c) => [c, 0])) as Record<FrameClass, number>;
  for (let p = 0; p < memory; p++) { fates[FRAME_FATES[fate[p]]]++; classes[CLASSES[cls[p]]]++; }
  for (const c of CLASSES) ratioAcc[c].ratio = ratioAcc[c].bytes ? (ratioAcc[c].saved * PAGE_SIZE) / ratioAcc[c].bytes : null;
  return { n: o.rec.n, frames: memory, fate, cls, classError, counts: { fates, classes }, ratios: ratioAcc };
}

/** Columns of the grid: a power of two near the square root of the frames, 64 to 1024. */
function columnsFor(frames: number): number {
  let c = 64;
  while (c < 1024 && c * c < frames) c *= 2;
  return c;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The SVG: the class grid and the fate grid side by side, legends below. */
export function dumpMapSvg(m: DumpMap, title: string): string {
  const cols = columnsFor(m.frames);
  const rows = Math.ceil(m.frames / cols);
  const cell = Math.max(1, Math.min(12, Math.floor(512 / cols)));
  const gridW = cols * cell;
  const gridH = rows * cell;
  const gap = 24;
  const top = 40;
  const legendRows = Math.max(CLASSES.length, FRAME_FATES.length);
  const width = 2 * gridW + 3 * gap + 40;
  const height = top + gridH + 30 + legendRows * 18 + 20;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<title>${esc(title)}</title>`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${gap}" y="20" font-size="14">${esc(title)}: ${m.frames} frames, ${cols} a row, ${cell} px a frame</text>`);
  const grid = (x0: number, label: string, kind: 'class' | 'fate', codes: Uint8Array, names: readonly string[], color: (name: string) => string): void => {
    out.push(`<g id="${kind}-grid" transform="translate(${x0},${top})">`);
    out.push(`<text x="0" y="-6">${esc(label)}</text>`);
    for (let r = 0; r < rows; r++) {
      let c = 0;
      while (c < cols && r * cols + c < m.frames) {
        const code = codes[r * cols + c];
        let e = c + 1;
        while (e < cols && r * cols + e < m.frames && codes[r * cols + e] === code) e++;
        const name = names[code];
        out.push(`<rect class="${kind} ${name}" data-${kind}="${name}" data-pfn="${r * cols + c}" data-frames="${e - c}" x="${c * cell}" y="${r * cell}" width="${(e - c) * cell}" height="${cell}" fill="${color(name)}"/>`);
        c = e;
      }
    }
    out.push('</g>');
  };
  grid(gap, `page class (the dump's own mem_map)${m.classError ? `: unknown, ${m.classError}` : ''}`, 'class', m.cls, CLASSES, (n) => CLASS_COLOR[n as FrameClass]);
  grid(2 * gap + gridW, 'what happened to each frame', 'fate', m.fate, FRAME_FATES, (n) => FATE_COLOR[n as FrameFate]);
  const ly = top + gridH + 30;
  out.push(`<g id="legend" transform="translate(0,${ly})">`);
  CLASSES.forEach((c, i) => {
    const r = m.ratios[c];
    out.push(`<rect x="${gap}" y="${i * 18}" width="12" height="12" fill="${CLASS_COLOR[c]}" stroke="#555"/><text x="${gap + 18}" y="${i * 18 + 10}" data-legend-class="${c}" data-count="${m.counts.classes[c]}">${c}: ${m.counts.classes[c]} frames${r.ratio !== null ? `, ${r.saved} saved, ratio ${r.ratio.toFixed(2)}` : ''}</text>`);
  });
  FRAME_FATES.forEach((f, i) => {
    out.push(`<rect x="${2 * gap + gridW}" y="${i * 18}" width="12" height="12" fill="${FATE_COLOR[f]}" stroke="#555"/><text x="${2 * gap + gridW + 18}" y="${i * 18 + 10}" data-legend-fate="${f}" data-count="${m.counts.fates[f]}">${f}: ${m.counts.fates[f]}</text>`);
  });
  out.push('</g>');
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** The same as text: two strips of one character per group of frames (the group's most common value), legends with counts. */
export function dumpMapText(m: DumpMap, width = 64, maxRows = 32): string {
  if (width < 8 || width > 512) throw new UsageError(`--width ${width} must be between 8 and 512`);
  const per = Math.max(1, Math.ceil(m.frames / (width * maxRows)));
  const strip = (codes: Uint8Array, chars: (code: number) => string): string[] => {
    const lines: string[] = [];
    let line = '';
    const tally = new Map<number, number>();
    for (let g = 0; g * per < m.frames; g++) {
      tally.clear();
      for (let p = g * per; p < Math.min(m.frames, (g + 1) * per); p++) tally.set(codes[p], (tally.get(codes[p]) ?? 0) + 1);
      let best = 0;
      let bestN = -1;
      for (const [code, n] of tally) if (n > bestN) { best = code; bestN = n; }
      line += chars(best);
      if (line.length === width) { lines.push(`${`0x${(g * per - (width - 1) * per).toString(16)}`.padStart(10)} ${line}`); line = ''; }
    }
    if (line) lines.push(`${`0x${(Math.floor((m.frames - 1) / per / width) * width * per).toString(16)}`.padStart(10)} ${line}`);
    return lines;
  };
  const out: string[] = [`dump ${m.n}: ${m.frames} frames, ${per} frame${per === 1 ? '' : 's'} a character (the most common value); rows start at the PFN shown`, ''];
  out.push('page class:');
  out.push(...strip(m.cls, (c) => CLASS_CHAR[CLASSES[c]]));
  out.push(`  ${CLASSES.map((c) => `${CLASS_CHAR[c]} ${c} ${m.counts.classes[c]}${m.ratios[c].ratio !== null ? ` (ratio ${m.ratios[c].ratio!.toFixed(2)})` : ''}`).join(', ')}`);
  if (m.classError) out.push(`  (classes unknown: ${m.classError})`);
  out.push('', 'what happened:');
  out.push(...strip(m.fate, (f) => FATE_CHAR[FRAME_FATES[f]]));
  out.push(`  ${FRAME_FATES.filter((f) => m.counts.fates[f]).map((f) => `${FATE_CHAR[f]} ${f} ${m.counts.fates[f]}`).join(', ')}`);
  return out.join('\n') + '\n';
}
