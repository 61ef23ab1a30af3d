/**
 * Writeout, save and reads of a saved dump on 256 MiB and 1 GiB machines
 * (profile database, seed 1, the default etc/sysconfig/dump: all RAM, GZIP).
 *
 * Setup per size: `machine power-on`, `lkcd config` (arm, preload kexec),
 * `machine panic "bench"` (stage 1 and the kexec boot).
 *
 * Ours, each a child process, wall time and peak RSS:
 * - writeout: `lkcd config` in the new kernel (stage 2 to dev/vmdump, fsync,
 *   release the frames, re-arm). MB/s = the dump's bytes on the device
 *   (header to end) / wall s.
 * - save: `lkcd save` (find and hash the device dump, copy to dump.N, verify
 *   every page, map/kerntypes/analysis, index every page, bounds, mark).
 *   MB/s = size of dump.N / wall s.
 * Baselines, same run, same bytes: `cp --sparse=always` of the device file
 * then `sync` of the copy, and the same for dump.N. Their MB/s use the same
 * byte counts as ours, so the columns compare.
 *
 * Reads, in this process through the library (`lkcd read` without Node
 * start-up): RANDOM_READS pages at random saved pfns through the SQLite
 * index (openIndexedDump + readPhysical, lkcd/query.ts), beside a linear
 * walk of dump.N that decompresses every page (verifyLkcd), and a full
 * open without the index (openLkcdFile walks the records first) followed
 * by the same random reads. MB = 10^6 bytes.
 *
 * Target: every random read equals the page the walk-based reader returns
 * (a sample is compared), and save completes; the numbers are reported.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PAGE_SIZE } from '../../src/machine/index.js';
import { BlockDevice, findDeviceDump, openLkcdFile, verifyLkcd } from '../../src/dump/index.js';
import { DumpIndex } from '../../src/store/index.js';
import { openIndexedDump, readPhysical } from '../../lkcd/query.js';
import { formatTable, type Benchmark, type BenchContext, type BenchOutcome } from './lib/bench.js';
import { measureNode, requireSuccess, rssMethod, timeCommand } from './lib/measure.js';

const MiB = 1 << 20;
const MB = 1e6;
const SIZES = [{ label: '256M', bytes: 256 * MiB }, { label: '1G', bytes: 1024 * MiB }] as const;
const PROFILE = 'database';
const SEED = 1;
const MESSAGE = 'bench';
const RANDOM_READS = 20_000;
/** Random reads also read through the walked reader and compared byte for byte. */
const COMPARED_READS = 500;
const WROTE_LINE = /^dump: wrote the dump saved before the soft boot .*: (\d+) pages, (\d+) bytes/m;
const SAVED_LINE = /^lkcd save: saved dump (\d+) to /m;

interface Row {
  size: string;
  pages: number;
  deviceDumpBytes: number;
  dumpFileBytes: number;
  writeoutSeconds: number;
  writeoutRssMiB: number;
  cpDeviceSeconds: number;
  saveSeconds: number;
  saveRssMiB: number;
  cpDumpSeconds: number;
  randomReadsPerSecond: number;
  openIndexedSeconds: number;
  verifyWalkSeconds: number;
  verifyPagesPerSecond: number;
  openWalkSeconds: number;
  walkedRandomReadsPerSecond: number;
  mismatches: number;
}

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function requireFreeSpace(dir: string, bytes: number): void {
  const s = fs.statfsSync(dir);
  const free = s.bavail * s.bsize;
  if (free < bytes) throw new Error(`${dir}: ${(free / MiB).toFixed(0)} MiB free, the benchmark needs ${(bytes / MiB).toFixed(0)} MiB`);
}

/** `cp --sparse=always from to && sync to`, wall seconds. */
function cpAndSync(from: string, to: string): number {
  const t0 = process.hrtime.bigint();
  requireSuccess(timeCommand('cp', ['--sparse=always', from, to]));
  requireSuccess(timeCommand('sync', [to]));
  const s = seconds(t0);
  fs.rmSync(to);
  return s;
}

/** A deterministic sequence of indexes below `n`. */
function randomIndexes(n: number, count: number, seed: number): number[] {
  const out: number[] = [];
  let block = Buffer.alloc(0);
  let counter = 0;
  for (let i = 0; i < count; i++) {
    if (block.length < 4) { block = crypto.createHash('sha256').update(`save-bench-${seed}-${counter++}`).digest(); }
    out.push(block.readUInt32LE(0) % n);
    block = block.subarray(4);
  }
  return out;
}

function measureSize(ctx: BenchContext, size: (typeof SIZES)[number]): Row {
  const dir = ctx.tempDir(`save-${size.label}`);
  try {
    // RAM, device, dump.N, the copies, the index, the kernel build.
    requireFreeSpace(dir, 4 * size.bytes + 512 * MiB);
    const root = path.join(dir, 'root');
    const env: NodeJS.ProcessEnv = { ...process.env, LKCD_NO_PROGRESS: '1' };
    for (const k of Object.keys(env)) if (k.startsWith('LKCD_') && k !== 'LKCD_NO_PROGRESS') delete env[k];
    const opts = { cwd: ctx.repo, env };
    const lkcdJs = path.join(ctx.repo, 'dist', 'lkcd', 'main.js');

    ctx.progress(`power-on --mem ${size.label}`);
    requireSuccess(timeCommand(process.execPath, [ctx.machineJs, 'power-on', '--root', root, '--mem', size.label, '--profile', PROFILE, '--seed', String(SEED)], opts));
    ctx.progress('lkcd config (arm)');
    requireSuccess(timeCommand(process.execPath, [lkcdJs, 'config', '--root', root], opts));
    ctx.progress(`machine panic (${size.label})`);
    const panic = requireSuccess(timeCommand(process.execPath, [ctx.machineJs, 'panic', '--root', root, MESSAGE], opts));
    if (!/^kexec: booted .*saved dump reserved/m.test(panic.stdout)) throw new Error(`machine panic did not kexec into a kernel holding the dump:\n${panic.stdout}`);

    ctx.progress('lkcd config (writeout)');
    const writeout = requireSuccess(measureNode(lkcdJs, ['config', '--root', root], opts));
    const wrote = WROTE_LINE.exec(writeout.stdout);
    if (!wrote) throw new Error(`lkcd config wrote no dump:\n${writeout.stdout}`);
    const device = path.join(root, 'dev', 'vmdump');
    const dev = BlockDevice.open(device);
    let deviceDumpBytes: number;
    try {
      const found = findDeviceDump(dev);
      if (!found) throw new Error(`${device}: no dump after the writeout`);
      deviceDumpBytes = Number(found.end - found.start);
    } finally {
      dev.close();
    }
    ctx.progress('cp + sync of the device file');
    const cpDeviceSeconds = cpAndSync(device, path.join(dir, 'vmdump.copy'));

    ctx.progress('lkcd save');
    const save = requireSuccess(measureNode(lkcdJs, ['save', '--root', root], opts));
    const savedN = SAVED_LINE.exec(save.stdout);
    if (!savedN) throw new Error(`lkcd save saved nothing:\n${save.stdout}`);
    const n = Number(savedN[1]);
    const dumpdir = path.join(root, 'log', 'dump');
    const file = path.join(dumpdir, String(n), `dump.${n}`);
    const dumpFileBytes = fs.statSync(file).size;
    ctx.progress('cp + sync of dump.N');
    const cpDumpSeconds = cpAndSync(file, path.join(dir, 'dump.copy'));

    // The pfns to read: every saved page, in pfn order, from the index.
    const index = DumpIndex.open(dumpdir, { readonly: true });
    const pfns: bigint[] = [];
    try {
      for (const p of index.iteratePages(n)) pfns.push(p.pfn);
    } finally {
      index.close();
    }
    const picks = randomIndexes(pfns.length, RANDOM_READS, SEED).map((i) => pfns[i]);

    ctx.progress(`${RANDOM_READS} random page reads through the index`);
    let t0 = process.hrtime.bigint();
    const o = openIndexedDump(dumpdir, n);
    const openIndexedSeconds = seconds(t0);
    const indexed: Buffer[] = [];
    let randomSeconds: number;
    try {
      t0 = process.hrtime.bigint();
      for (const [i, pfn] of picks.entries()) {
        const b = readPhysical(o.dump, pfn * BigInt(PAGE_SIZE), PAGE_SIZE);
        if (i < COMPARED_READS) indexed.push(b);
      }
      randomSeconds = seconds(t0);
    } finally {
      o.close();
    }

    ctx.progress('linear walk of dump.N (verifyLkcd)');
    t0 = process.hrtime.bigint();
    const v = verifyLkcd(file);
    const verifyWalkSeconds = seconds(t0);
    if (v.bad.length) throw new Error(`${file}: verify found ${v.bad.length} bad records`);

    ctx.progress('open without the index (walk), then the same random reads');
    t0 = process.hrtime.bigint();
    const walked = openLkcdFile(file);
    const openWalkSeconds = seconds(t0);
    let mismatches = 0;
    let walkedRandomSeconds: number;
    try {
      t0 = process.hrtime.bigint();
      for (const [i, pfn] of picks.entries()) {
        const b = walked.readPage(pfn);
        if (i < COMPARED_READS && !Buffer.from(b).equals(indexed[i])) mismatches++;
      }
      walkedRandomSeconds = seconds(t0);
    } finally {
      walked.close();
    }

    return {
      size: size.label,
      pages: Number(wrote[1]),
      deviceDumpBytes,
      dumpFileBytes,
      writeoutSeconds: writeout.wallSeconds,
      writeoutRssMiB: writeout.peakRssKiB / 1024,
      cpDeviceSeconds,
      saveSeconds: save.wallSeconds,
      saveRssMiB: save.peakRssKiB / 1024,
      cpDumpSeconds,
      randomReadsPerSecond: RANDOM_READS / randomSeconds,
      openIndexedSeconds,
      verifyWalkSeconds,
      verifyPagesPerSecond: v.pages / verifyWalkSeconds,
      openWalkSeconds,
      walkedRandomReadsPerSecond: RANDOM_READS / walkedRandomSeconds,
      mismatches,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const mbps = (bytes: number, s: number): string => (bytes / MB / s).toFixed(1);

const benchmark: Benchmark = {
  name: 'save',
  description: `writeout (lkcd config after the panic) and lkcd save beside cp+sync of the same bytes; random page reads through the index beside a linear walk; profile ${PROFILE} seed ${SEED}`,
  run(ctx: BenchContext): BenchOutcome {
    const rows = SIZES.map((s) => measureSize(ctx, s));

    process.stdout.write('writeout and save: wall s of the child process (Node start-up included); MB/s over the dump\'s bytes (device: header to end; save: dump.N), MB = 10^6 bytes\n');
    process.stdout.write(formatTable(
      ['size', 'pages', 'dump MB', 'writeout s', 'writeout MB/s', 'cp+sync dev s', 'cp MB/s', 'save s', 'save MB/s', 'cp+sync dump.N s', 'cp MB/s', 'writeout RSS MiB', 'save RSS MiB'],
      rows.map((r) => [
        r.size, String(r.pages), (r.dumpFileBytes / MB).toFixed(1),
        r.writeoutSeconds.toFixed(2), mbps(r.deviceDumpBytes, r.writeoutSeconds), r.cpDeviceSeconds.toFixed(2), mbps(r.deviceDumpBytes, r.cpDeviceSeconds),
        r.saveSeconds.toFixed(2), mbps(r.dumpFileBytes, r.saveSeconds), r.cpDumpSeconds.toFixed(2), mbps(r.dumpFileBytes, r.cpDumpSeconds),
        r.writeoutRssMiB.toFixed(1), r.saveRssMiB.toFixed(1),
      ]),
    ));
    process.stdout.write(`\nreads of dump.N in-process: ${RANDOM_READS} random saved pfns; walk = every record read and decompressed in file order\n`);
    process.stdout.write(formatTable(
      ['size', 'open via index s', 'random reads/s (index)', 'verify walk s', 'walk pages/s', 'open by walk s', 'random reads/s (walked)', 'index vs walk mismatches'],
      rows.map((r) => [
        r.size, r.openIndexedSeconds.toFixed(3), r.randomReadsPerSecond.toFixed(0), r.verifyWalkSeconds.toFixed(2), r.verifyPagesPerSecond.toFixed(0),
        r.openWalkSeconds.toFixed(2), r.walkedRandomReadsPerSecond.toFixed(0), `${r.mismatches}/${COMPARED_READS}`,
      ]),
    ));
    const pass = rows.every((r) => r.mismatches === 0);
    process.stdout.write(`random reads through the index equal the walked reader's pages: ${pass ? 'PASS' : 'FAIL'}\n`);

    const file = ctx.writeResults('save.json', {
      benchmark: 'save',
      date: new Date().toISOString(),
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpu: os.cpus()[0]?.model,
      cpus: os.cpus().length,
      tmpdir: os.tmpdir(),
      profile: PROFILE,
      seed: SEED,
      rssMethod: rssMethod(),
      randomReads: RANDOM_READS,
      rows,
      pass,
    });
    process.stdout.write(`results: ${file}\n`);
    return { pass };
  },
};

export default benchmark;
