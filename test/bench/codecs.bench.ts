/**
 * Page codecs on 64 MiB of mixed, realistic pages (ContentGenerator, seed 1).
 *
 * Ours, in this process, one 4 KiB page per call with the LKCD per-page
 * rule (a page that does not shrink counts as stored raw):
 * - gzip level 1 through the lkcd-pagezip addon;
 * - gzip level 1 through node:zlib deflateSync, the fallback engine;
 * - the LKCD RLE;
 * and the read side: inflate of every compressed page, addon vs node:zlib.
 * Also per content class, where the addon's saving (no stream set-up per
 * page) shows most on pages that compress quickly, such as zero pages.
 *
 * Baselines, same run, same bytes written to a temporary file: `gzip -1`,
 * `zstd -1`, `lz4 -1` over the whole file as one stream. They compress
 * across page boundaries with windows of 32 KiB and more, so their ratio is
 * an upper bound a per-page format cannot reach; their speed is the number
 * to compare.
 *
 * Target: the addon's deflate is no slower than node:zlib's (within 5%
 * noise); every engine writes identical zlib bytes (checked, else the
 * benchmark throws).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  GZIP_ENGINE, GZIP_ENGINE_LOAD_ERROR, GZIP_ZLIB_VERSION, gzipEngines, openPageDeflater, openPageInflater,
  rleCompress, rleUncompress, type GzipEngine,
} from '../../src/dump/codecs/index.js';
import { ContentGenerator, type ContentClass } from '../../src/kernel/workload/content.js';
import { PAGE_SIZE } from '../../src/machine/constants.js';
import { createContext, findRepo, formatTable, type BenchContext, type BenchOutcome, type Benchmark } from './lib/bench.js';

const MiB = 1 << 20;
const TOTAL_BYTES = 64 * MiB;
const PAGES = TOTAL_BYTES / PAGE_SIZE;
const SEED = 1;
const LEVEL = 1;
/** Consecutive pages of one class, as a process's memory comes in runs. */
const RUN_PAGES = 32;
/** The addon's deflate must take at most this times node:zlib's (noise allowance). */
const DEFLATE_SLACK = 1.05;
/** Timed repetitions of each codec; the fastest counts. */
const REPS = 3;
/** Share of each class in the mix (parts of 100). */
const MIX: ReadonlyArray<readonly [ContentClass, number]> = [
  ['page_cache', 24], ['anon_heap', 22], ['slab', 14], ['database', 14], ['kernel_text', 6],
  ['zero', 10], ['incompressible', 10],
];
const MB = 1e6;

interface CodecRow {
  codec: string;
  engine: string;
  seconds: number;
  mbPerSecond: number;
  usPerPage: number;
  /** Input bytes / output bytes. */
  ratio: number;
  outputBytes: number;
  /** Pages stored compressed under the per-page rule (in-process codecs only). */
  compressedPages?: number;
}

/** The mix, class by class in runs of RUN_PAGES, each class's runs at its own PFNs. */
function generatePages(): { data: Uint8Array; runs: ContentClass[]; classes: Record<string, number> } {
  const data = new Uint8Array(TOTAL_BYTES);
  const gen = new ContentGenerator({ seed: SEED });
  const runs: ContentClass[] = [];
  const totalRuns = PAGES / RUN_PAGES;
  for (const [cls, parts] of MIX) {
    for (let i = 0; i < Math.round((totalRuns * parts) / 100); i++) runs.push(cls);
  }
  while (runs.length < totalRuns) runs.push(MIX[0][0]);
  runs.length = totalRuns;
  // A fixed shuffle (LCG), so the classes interleave the same way every run.
  let x = SEED;
  for (let i = runs.length - 1; i > 0; i--) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const j = x % (i + 1);
    [runs[i], runs[j]] = [runs[j], runs[i]];
  }
  const classes: Record<string, number> = {};
  for (let r = 0; r < runs.length; r++) {
    const at = r * RUN_PAGES * PAGE_SIZE;
    gen.fill(runs[r], BigInt(r * RUN_PAGES), data.subarray(at, at + RUN_PAGES * PAGE_SIZE));
    classes[runs[r]] = (classes[runs[r]] ?? 0) + RUN_PAGES;
  }
  return { data, runs, classes };
}

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

interface InProcess {
  readonly codec: string;
  readonly engine: string;
  /** Returns the stored size of page `i`: 0 means "stored raw" (deflate) or the bytes produced (inflate). */
  readonly step: (i: number) => number;
  /** The pages it works on, in order. */
  readonly pages: readonly number[];
}

interface Timed {
  /** Fastest whole pass. */
  seconds: number;
  /** Per content class, fastest over the passes. */
  byClass: Map<ContentClass, number>;
}

/**
 * Times every codec over all of its pages, REPS passes interleaved (A B C,
 * A B C, ...) so that background load hits them alike; keeps the fastest.
 * Time is read once per run of RUN_PAGES pages and charged to its class.
 */
function timeInterleaved(codecs: readonly InProcess[], classOf: (page: number) => ContentClass): Timed[] {
  const timed = codecs.map(() => ({ seconds: Infinity, byClass: new Map<ContentClass, number>() }));
  for (const c of codecs) for (let k = 0; k < Math.min(512, c.pages.length); k++) c.step(c.pages[k]);
  for (let rep = 0; rep < REPS; rep++) {
    codecs.forEach((c, n) => {
      const byClass = new Map<ContentClass, number>();
      const t0 = process.hrtime.bigint();
      let k = 0;
      while (k < c.pages.length) {
        const cls = classOf(c.pages[k]);
        const t = process.hrtime.bigint();
        // One run: consecutive pages of one class.
        do c.step(c.pages[k++]); while (k < c.pages.length && classOf(c.pages[k]) === cls);
        byClass.set(cls, (byClass.get(cls) ?? 0) + seconds(t));
      }
      const total = seconds(t0);
      timed[n].seconds = Math.min(timed[n].seconds, total);
      for (const [cls, s] of byClass) timed[n].byClass.set(cls, Math.min(timed[n].byClass.get(cls) ?? Infinity, s));
    });
  }
  return timed;
}

/** Output of a compressor over every page; sizes[i] = 0 means "stored raw". */
interface PerPage { sizes: Uint32Array; out: Uint8Array }

function compressor(data: Uint8Array, fn: (page: Uint8Array, dst: Uint8Array) => number): { result: PerPage; step: (i: number) => number } {
  const out = new Uint8Array(data.length);
  const sizes = new Uint32Array(PAGES);
  return {
    result: { sizes, out },
    step(i) {
      const at = i * PAGE_SIZE;
      sizes[i] = fn(data.subarray(at, at + PAGE_SIZE), out.subarray(at, at + PAGE_SIZE));
      return sizes[i];
    },
  };
}

function row(codec: string, engine: string, s: number, r: PerPage): CodecRow {
  let outputBytes = 0;
  let compressedPages = 0;
  for (const n of r.sizes) {
    if (n > 0) compressedPages++;
    outputBytes += n > 0 ? n : PAGE_SIZE;
  }
  return {
    codec, engine, seconds: s, mbPerSecond: TOTAL_BYTES / MB / s, usPerPage: (s * 1e6) / PAGES,
    ratio: TOTAL_BYTES / outputBytes, outputBytes, compressedPages,
  };
}

function samePages(a: PerPage, b: PerPage, what: string): void {
  for (let i = 0; i < a.sizes.length; i++) {
    const n = a.sizes[i];
    const at = i * PAGE_SIZE;
    if (n !== b.sizes[i] || Buffer.compare(a.out.subarray(at, at + n), b.out.subarray(at, at + n)) !== 0) {
      throw new Error(`${what}: page ${i} differs (${n} vs ${b.sizes[i]} bytes)`);
    }
  }
}

interface InProcessResults {
  rows: CodecRow[];
  /** us/page by class: [class, addon deflate, node:zlib deflate, rle, addon inflate, node:zlib inflate]. */
  classRows: string[][];
  pass: boolean;
  notes: string[];
}

function inProcessRows(data: Uint8Array, classOf: (page: number) => ContentClass): InProcessResults {
  const notes: string[] = [];
  const all = Array.from({ length: PAGES }, (_, i) => i);
  const engines = gzipEngines();
  const deflaters = engines.map((e) => openPageDeflater(LEVEL, e));
  const gz = deflaters.map((d) => compressor(data, (p, o) => d.deflate(p, o)));
  const rle = compressor(data, rleCompress);
  const deflateCodecs: InProcess[] = [
    ...gz.map((g, n) => ({ codec: `gzip -${LEVEL} deflate`, engine: engines[n], step: g.step, pages: all })),
    { codec: 'rle compress', engine: 'ts', step: rle.step, pages: all },
  ];
  const dt = timeInterleaved(deflateCodecs, classOf);
  deflaters.forEach((d) => d.close());
  const rows = deflateCodecs.map((c, n) =>
    row(c.codec, c.engine, dt[n].seconds, n < gz.length ? gz[n].result : rle.result));

  // Every engine writes the same zlib bytes; RLE decodes back to the pages.
  const reference = gz[gz.length - 1].result;
  for (let n = 0; n < gz.length - 1; n++) samePages(gz[n].result, reference, `${engines[n]} vs ${engines[gz.length - 1]}`);
  if (gz.length > 1) notes.push(`${engines.join(' and ')} wrote identical zlib bytes for all ${PAGES} pages`);
  const back = new Uint8Array(PAGE_SIZE);
  for (let i = 0; i < PAGES; i++) {
    const n = rle.result.sizes[i];
    if (n === 0) continue;
    const at = i * PAGE_SIZE;
    if (rleUncompress(rle.result.out.subarray(at, at + n), back) !== PAGE_SIZE
      || Buffer.compare(back, data.subarray(at, at + PAGE_SIZE)) !== 0) {
      throw new Error(`rle: page ${i} does not round-trip`);
    }
  }

  // Read side: inflate every page stored compressed.
  const compressed = all.filter((i) => reference.sizes[i] > 0);
  const inBytes = compressed.reduce((sum, i) => sum + reference.sizes[i], 0);
  const inflaters = engines.map((e) => openPageInflater(e));
  const pageOut = new Uint8Array(PAGE_SIZE);
  const inflateCodecs: InProcess[] = inflaters.map((inf, n) => ({
    codec: 'gzip inflate', engine: engines[n], pages: compressed,
    step(i) {
      const at = i * PAGE_SIZE;
      const produced = inf.inflate(reference.out.subarray(at, at + reference.sizes[i]), pageOut);
      if (produced !== PAGE_SIZE) throw new Error(`${engines[n]}: page ${i} inflated to ${produced} bytes`);
      return produced;
    },
  }));
  const it = timeInterleaved(inflateCodecs, classOf);
  inflaters.forEach((inf) => inf.close());
  const outBytes = compressed.length * PAGE_SIZE;
  inflateCodecs.forEach((c, n) => rows.push({
    codec: `${c.codec} (${compressed.length} pages)`, engine: c.engine, seconds: it[n].seconds,
    mbPerSecond: outBytes / MB / it[n].seconds, usPerPage: (it[n].seconds * 1e6) / compressed.length,
    ratio: outBytes / inBytes, outputBytes: outBytes,
  }));

  const count = new Map<ContentClass, number>();
  const countCompressed = new Map<ContentClass, number>();
  for (const i of all) count.set(classOf(i), (count.get(classOf(i)) ?? 0) + 1);
  for (const i of compressed) countCompressed.set(classOf(i), (countCompressed.get(classOf(i)) ?? 0) + 1);
  const us = (t: Timed, cls: ContentClass, n: number | undefined): string => {
    const s = t.byClass.get(cls);
    return s === undefined || !n ? '-' : ((s * 1e6) / n).toFixed(1);
  };
  const classRows = [...count.keys()].sort().map((cls) => [
    cls, String(count.get(cls)),
    ...dt.map((t) => us(t, cls, count.get(cls))),
    ...it.map((t) => us(t, cls, countCompressed.get(cls))),
  ]);

  let pass = true;
  const a = engines.indexOf('lkcd-pagezip');
  const z = engines.indexOf('node:zlib');
  if (a < 0) {
    pass = false;
    notes.push(`lkcd-pagezip did not load (${GZIP_ENGINE_LOAD_ERROR?.message}): FAIL`);
  } else {
    const ok = dt[a].seconds <= DEFLATE_SLACK * dt[z].seconds;
    pass = ok;
    notes.push(`deflate: node:zlib / addon time = ${(dt[z].seconds / dt[a].seconds).toFixed(2)}x; ` +
      `inflate: ${(it[z].seconds / it[a].seconds).toFixed(2)}x`);
    notes.push(`target: addon deflate within ${DEFLATE_SLACK}x of node:zlib's time: ${ok ? 'PASS' : 'FAIL'}`);
  }
  return { rows, classRows, pass, notes };
}

interface Tool { name: string; file: string; args: string[] }
const TOOLS: readonly Tool[] = [
  { name: 'gzip -1', file: 'gzip', args: ['-1', '-c'] },
  { name: 'zstd -1', file: 'zstd', args: ['-1', '-c', '-q', '-T1'] },
  { name: 'lz4 -1', file: 'lz4', args: ['-1', '-c', '-q'] },
];

/** Times `tool file > /dev/null` (fastest of REPS), then counts its output through a pipe. */
function baselineRows(file: string): { rows: CodecRow[]; missing: string[] } {
  const rows: CodecRow[] = [];
  const missing: string[] = [];
  for (const t of TOOLS) {
    const probe = spawnSync(t.file, ['--version'], { stdio: 'ignore' });
    if (probe.error) {
      missing.push(t.name);
      continue;
    }
    const devNull = fs.openSync('/dev/null', 'w');
    let fastest = Infinity;
    try {
      for (let i = 0; i < REPS; i++) {
        const t0 = process.hrtime.bigint();
        const r = spawnSync(t.file, [...t.args, file], { stdio: ['ignore', devNull, 'pipe'] });
        const s = seconds(t0);
        if (r.status !== 0) throw new Error(`${t.name}: exited ${r.status}: ${r.stderr.toString().trim()}`);
        fastest = Math.min(fastest, s);
      }
    } finally {
      fs.closeSync(devNull);
    }
    const sized = spawnSync(t.file, [...t.args, file], { maxBuffer: 2 * TOTAL_BYTES });
    if (sized.status !== 0) throw new Error(`${t.name}: exited ${sized.status}`);
    const outputBytes = sized.stdout.length;
    rows.push({
      codec: `${t.name} (stream)`, engine: t.file, seconds: fastest, mbPerSecond: TOTAL_BYTES / MB / fastest,
      usPerPage: (fastest * 1e6) / PAGES, ratio: TOTAL_BYTES / outputBytes, outputBytes,
    });
  }
  return { rows, missing };
}

function runBench(ctx: BenchContext): BenchOutcome {
  ctx.progress(`generating ${TOTAL_BYTES / MiB} MiB of mixed pages`);
  const { data, runs, classes } = generatePages();
  const dir = ctx.tempDir('codecs');
  const file = path.join(dir, 'pages.bin');
  fs.writeFileSync(file, data);
  try {
    ctx.progress('per-page deflate, RLE and inflate');
    const ours = inProcessRows(data, (i) => runs[Math.floor(i / RUN_PAGES)]);
    ctx.progress('baselines');
    const base = baselineRows(file);

    const fmt = (r: CodecRow, against: CodecRow[]): string[] => [
      r.codec, r.engine, r.seconds.toFixed(3), r.mbPerSecond.toFixed(0), r.usPerPage.toFixed(2),
      r.ratio.toFixed(2), r.compressedPages === undefined ? '' : `${((100 * r.compressedPages) / PAGES).toFixed(1)}%`,
      ...against.map((b) => `${(r.mbPerSecond / b.mbPerSecond).toFixed(2)}x`),
    ];
    const header = ['codec', 'engine', 'best s', 'MB/s', 'us/page', 'ratio', 'pages compr.',
      ...base.rows.map((b) => `vs ${b.codec.replace(' (stream)', '')}`)];
    process.stdout.write(`${TOTAL_BYTES / MiB} MiB, ${PAGES} pages of ${PAGE_SIZE} bytes, seed ${SEED}; ` +
      `mix ${Object.entries(classes).map(([c, n]) => `${c} ${n}`).join(', ')}\n`);
    process.stdout.write(`zlib ${GZIP_ZLIB_VERSION}; default engine ${GZIP_ENGINE}; best of ${REPS} interleaved passes; ` +
      `MB = 10^6 bytes; ratio = input / output (raw pages count as ${PAGE_SIZE} bytes); ` +
      'vs X = our MB/s / X\'s MB/s\n\n');
    process.stdout.write(formatTable(header, [...ours.rows, ...base.rows].map((r) => fmt(r, base.rows))));
    process.stdout.write('\nus/page by content class\n');
    const engines = gzipEngines();
    process.stdout.write(formatTable(
      ['class', 'pages', ...engines.map((e) => `deflate ${e}`), 'rle', ...engines.map((e) => `inflate ${e}`)],
      ours.classRows));
    for (const n of ours.notes) process.stdout.write(`${n}\n`);
    if (base.missing.length > 0) process.stdout.write(`baselines not installed: ${base.missing.join(', ')}\n`);

    const out = ctx.writeResults('codecs.json', {
      benchmark: 'codecs',
      date: new Date().toISOString(),
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpu: os.cpus()[0]?.model,
      zlib: GZIP_ZLIB_VERSION,
      engines: gzipEngines() as GzipEngine[],
      bytes: TOTAL_BYTES,
      classes,
      rows: ours.rows,
      byClassUsPerPage: ours.classRows,
      baselines: base.rows,
      pass: ours.pass,
    });
    process.stdout.write(`results: ${out}\n`);
    return { pass: ours.pass };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const benchmark: Benchmark = {
  name: 'codecs',
  description: `per-page gzip -${LEVEL} (lkcd-pagezip addon vs node:zlib) and RLE on ${TOTAL_BYTES / MiB} MiB of mixed pages; ` +
    'baselines gzip/zstd/lz4 -1 over the same bytes',
  run: runBench,
};

export default benchmark;

/** Runs this benchmark alone (run.ts runs it through the default export). */
export async function run(): Promise<void> {
  const tempDirs: string[] = [];
  try {
    const outcome = runBench(createContext(findRepo(), tempDirs));
    if (!outcome.pass) process.exitCode = 1;
  } finally {
    for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await run();
}
