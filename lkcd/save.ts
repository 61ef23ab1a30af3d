import crypto from 'node:crypto';
import zlib from 'node:zlib';
import fs from 'node:fs';
import path from 'node:path';
import { DegradedResult, DumpError, InternalError, hex, ioError } from '../src/codec/index.js';
import { ensureDir, fsyncDir, PAGE_SIZE, PAGE_SIZE_N, type MachineRoot } from '../src/machine/index.js';
import { buildFileNames, closeSystem, dumpDriverName, openSystem } from '../src/kernel/index.js';
import {
  BlockDevice, DUMP_COMPRESS_NAMES, deviceDumpSha256, findDeviceDump, pfnRanges, killPoint, notSelectedFrames,
  openDump, readDeviceMark, writeSavedMark, writeSavingMark, type DumpIntegrity, type DumpProblem, type DumpSource, type ProbedDump,
} from '../src/dump/index.js';
import {
  DumpIndex, INDEX_FILE, panicSignature, type DeviceDumpRow, type DumpRecord, type LogLine, type MissingRange, type PageRow,
} from '../src/store/index.js';
import { analysisText, panicFromLog, readDumpFacts, type DumpFacts } from './analysis.js';
import { dumpFileOf, readOrigin, savedOrigin, type DumpOrigin } from './origin.js';
import { acquireSaveLock, dumpDirOf, readBounds, writeBounds } from './dumpdir.js';
import { loadSysconfig } from './sysconfig.js';
import { SymbolTable } from './symbols.js';
import { saveVmlinux } from './debuginfo.js';
import { CopyingSource } from './copy_source.js';

/** What `lkcd save` did: its lines, the N it saved (or found), and the degraded result to report after them. */
export interface SaveReport { lines: string[]; n: number | null; degraded?: DegradedResult }

/**
 * LKCD_FAULT_SAVE_ENOSPC_AFTER=BYTES makes the copy fail with ENOSPC after
 * that many bytes, as a full DUMPDIR would (the fault matrix).
 */
function enospcAfter(): number | null {
  const v = process.env.LKCD_FAULT_SAVE_ENOSPC_AFTER;
  return v && /^\d{1,15}$/.test(v) ? Number(v) : null;
}

export function sha256File(file: string): string {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(4 << 20);
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** Writes a new file (0600) in a directory about to be renamed into place, fsynced: the rename must not publish it empty. */
export function writeNewFile0600(file: string, data: string | Uint8Array): void {
  try {
    const fd = fs.openSync(file, 'wx', 0o600);
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    throw ioError(`writing ${file}`, e as NodeJS.ErrnoException);
  }
}

function copyFile0600(from: string, to: string): void {
  try {
    fs.copyFileSync(from, to);
    fs.chmodSync(to, 0o600);
    const fd = fs.openSync(to, 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  } catch (e) {
    throw ioError(`copying ${from}`, e as NodeJS.ErrnoException);
  }
}

/** What opening dump.N found, for the index, the analysis and the save line. */
export interface DumpFindings {
  integrity: DumpIntegrity;
  /** PFNs dump.N holds that fail a check, within RAM, sorted; they read as not present. */
  damaged: bigint[];
  /** Listed ranges for the index: missing ones and the dumper's (from the dump), the damaged pages. */
  ranges: MissingRange[];
  missingPages: number;
  dumperPages: number;
  compressed: number;
  /** Frames the dump level did not select, from the dump's mem_map; null when it could not be read. */
  notSelected: number | null;
}

/** Opens a saved dump (or the copy being made of one) through the format table, checking every header, record and page (salvage: problems are collected). */
export function openSavedDump(file: string | DumpSource): ProbedDump {
  return openDump(file, { mode: 'salvage', verifyPages: true, pageCrc32: true });
}

/** The findings of an open dump (see DumpFindings). */
export function findingsOf(dump: ProbedDump, facts: DumpFacts): DumpFindings {
  const integrity = dump.integrity();
  const memory = dump.attrs['dump.memory_pages'];
  const damagedSet = new Set<bigint>();
  for (const p of integrity.problems) {
    if (p.pfn !== null && (memory === 0n || p.pfn < memory) && !dump.record?.(p.pfn)) damagedSet.add(p.pfn);
  }
  const damaged = [...damagedSet].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const ranges: MissingRange[] = integrity.ranges.map((r) => ({ start_pfn: r.start, end_pfn: r.end, reason: r.reason }));
  for (const r of pfnRanges(damaged, 'unspecified')) ranges.push({ start_pfn: r.start, end_pfn: r.end, reason: 'damaged' });
  ranges.sort((x, y) => (x.start_pfn < y.start_pfn ? -1 : x.start_pfn > y.start_pfn ? 1 : 0));
  const count = (pred: (r: MissingRange) => boolean): number => ranges.filter(pred).reduce((n, r) => n + Number(r.end_pfn - r.start_pfn), 0);
  let compressed = 0;
  if (dump.compressed) for (const pfn of dump.pages()) if (dump.compressed(pfn)) compressed++;
  const dropped = count((r) => r.reason === 'pass-dropped');
  // Only an LKCD dump level selects by the page types of mem_map; makedumpfile's -d mask is another vocabulary.
  const lkcd = dump.attrs['file.format'] === 'lkcd';
  return {
    integrity, damaged, ranges, compressed,
    missingPages: count((r) => r.reason !== 'dumper' && r.reason !== 'damaged'),
    dumperPages: count((r) => r.reason === 'dumper'),
    notSelected: lkcd && facts.pageTypes ? notSelectedFrames(facts.pageTypes, dump.attrs['dump.level'], dropped) : null,
  };
}

/** When the kernel crashed: VMCOREINFO's CRASHTIME when the dump carries it, else the header's time. */
function crashTimeOf(dump: ProbedDump): { sec: number; usec: number } {
  const m = /^CRASHTIME=(\d{1,15})$/m.exec(dump.vmcoreinfoText?.() ?? '');
  if (m && dump.attrs['file.format'] !== 'lkcd') return { sec: Number(m[1]), usec: 0 };
  return { sec: Number(dump.attrs['crash.time']), usec: Number(dump.attrs['crash.time_usec']) };
}

/**
 * The index record of a saved dump, from its file, what opening it found
 * and what was read out of it. A dump whose header has no panic string
 * (kdump, ELF) takes the one its kernel logged.
 */
export function dumpRecordOf(
  n: number, dir: string, dump: ProbedDump, f: DumpFindings, sha: string, storedBytes: number, facts: DumpFacts, origin: DumpOrigin = savedOrigin(n),
): DumpRecord {
  const a = dump.attrs;
  const panic = a['crash.panic_string'] || panicFromLog(facts.log) || '';
  const sig = panicSignature(panic, facts.callSite);
  const pages = a['dump.pages'];
  const lkcd = a['file.format'] === 'lkcd';
  const time = crashTimeOf(dump);
  return {
    n, dir, time_sec: time.sec, time_usec: time.usec,
    host: a['linux.uts.nodename'], release: a['linux.uts.release'], version: a['linux.uts.version'], machine: a['linux.uts.machine'],
    panic_string: panic, level: a['dump.level'], compress: lkcd ? compressCode(a['dump.compression']) : 0, flags: a['dump.flags'],
    pages, pages_compressed: f.compressed, raw_bytes: pages * a['arch.page_size'], stored_bytes: storedBytes,
    complete: f.integrity.state === 'complete', missing_pages: f.missingPages, sha256: sha,
    signature: sig.signature, signature_text: sig.text, saved_at: Math.floor(Date.now() / 1000),
    state: f.integrity.state, checksum: f.integrity.checksum, damaged_pages: f.damaged.length, memory_pages: Number(a['dump.memory_pages']),
    dumper_pages: f.dumperPages, not_selected_pages: f.notSelected,
    design: origin.design, format: a['file.format'] as DumpRecord['format'], file: origin.file, compression: a['dump.compression'],
    rle_convention: a['dump.rle_convention'] ?? null, source: origin.source, log_error: facts.log ? '' : facts.logError ?? 'not read',
    notes: f.integrity.notes.join('\n'),
  };
}

/** dh_dump_compress of a compression name. */
function compressCode(name: string): number {
  const hit = Object.entries(DUMP_COMPRESS_NAMES).find(([, v]) => v === name);
  if (!hit) throw new DumpError('UNSUPPORTED', `dump compression ${name} has no LKCD code`);
  return Number(hit[0]);
}

/** What `lkcd save` already knows of a dump it just wrote, so indexing reads it no further. */
export interface KnownDump {
  origin?: DumpOrigin;
  sha?: string;
  dump?: ProbedDump;
  facts?: DumpFacts;
  findings?: DumpFindings;
  /** The device dumps written to DUMPDIR/N/devices/. */
  devices?: DeviceDumpRow[];
}

/** Where lkcd save puts a dump's device dumps, under DUMPDIR/N. */
export const DEVICES_SUBDIR = 'devices';

/** One device dump of an open dump: its index row and its bytes, or why it cannot be read. */
export interface DeviceDumpFound {
  name: string;
  row: DeviceDumpRow | null;
  data: Uint8Array | null;
  problem: string | null;
}

/** The device dumps a dump carries, each read back (a damaged one is named, not thrown). */
export function deviceDumpsOf(dump: ProbedDump): DeviceDumpFound[] {
  return (dump.deviceDumps?.() ?? []).map((d, seq) => {
    try {
      const data = d.data();
      const sha256 = crypto.createHash('sha256').update(data).digest('hex');
      return { name: d.name, data, problem: null, row: { seq, name: d.name, driver: dumpDriverName(d.name), size: data.length, sha256, file: `${DEVICES_SUBDIR}/${d.name}` } };
    } catch (e) {
      if (!(e instanceof DumpError) || e.code === 'INTERNAL') throw e;
      return { name: d.name, data: null, row: null, problem: e.message };
    }
  });
}

/** Writes each readable device dump to <dir>/devices/<name> (0600, the directory 0700, fsynced). */
function writeDeviceDumps(dir: string, found: readonly DeviceDumpFound[]): void {
  const sub = path.join(dir, DEVICES_SUBDIR);
  ensureDir(sub, 0o700);
  for (const d of found) {
    if (!d.row || !d.data) continue;
    const fd = fs.openSync(path.join(dir, d.row.file), 'wx', 0o600);
    try {
      fs.writeFileSync(fd, d.data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
  fsyncDir(sub);
}

/**
 * Indexes dump N: from its directory alone (as `lkcd reindex` does), or
 * from what `lkcd save` already read while writing it. A damaged dump is
 * indexed as such, its damaged pages listed and left out of the page rows.
 */
export function indexDumpDir(index: DumpIndex, n: number, dir: string, known: KnownDump = {}): { n: number; inserted: boolean; record: DumpRecord } {
  const origin = known.origin ?? readOrigin(dir, n);
  const file = dumpFileOf(dir, origin);
  const dump = known.dump ?? openSavedDump(file);
  try {
    const facts = known.facts ?? readDumpFacts(dump, loadDumpMap(dir, n));
    const f = known.findings ?? findingsOf(dump, facts);
    const rec = dumpRecordOf(n, dir, dump, f, known.sha ?? sha256File(file), fs.statSync(file).size, facts, origin);
    const pages = function* (): Generator<PageRow> {
      // Row per page for random reads of the formats whose records are walked (LKCD); the others index themselves.
      if (!dump.record || dump.attrs['file.format'] !== 'lkcd') return;
      // In PFN order, the primary key's: SQLite then appends to the table's B-tree instead of
      // splitting pages (the records come pass by pass, a few ascending runs).
      const pfns = new Float64Array(dump.attrs['dump.pages']);
      let count = 0;
      for (const pfn of dump.pages()) {
        if (count === pfns.length) throw new InternalError(`${file}: more pages than dump.pages (${pfns.length})`);
        pfns[count++] = Number(pfn);
      }
      for (const p of pfns.subarray(0, count).sort()) {
        const pfn = BigInt(p);
        const r = dump.record!(pfn)!;
        // A checksum of each record's data, so `lkcd verify` can name a damaged page even when it is raw.
        yield { pfn, offset: r.offset, size: r.size, flags: r.flags, crc32: dump.pageCrc32?.(pfn) ?? null };
      }
    };
    const log: LogLine[] = (facts.log ?? []).map((l) => ({ seq: Number(l.seq), ts_nsec: l.ts_nsec, level: l.level, text: l.text }));
    const devices = known.devices ?? deviceDumpsOf(dump).flatMap((d) => (d.row ? [d.row] : []));
    const r = index.addDump(rec, pages(), log, f.ranges, devices);
    return { ...r, record: index.getDump(r.n)! };
  } finally {
    if (!known.dump) dump.close();
  }
}

/** DUMPDIR/N/map.N, the System.map kept with the dump, or null when there is none. */
export function loadDumpMap(dir: string, n: number): SymbolTable | null {
  const file = path.join(dir, `map.${n}`);
  return fs.existsSync(file) ? SymbolTable.load(file) : null;
}

/**
 * Why a TRUNCATED dump is incomplete when no listed range says so: the
 * reader's note (an LKCD file cut short before its END record, a
 * kdump-compressed file makedumpfile did not finish), or null.
 */
export function truncationNote(notes: string): string | null {
  return notes.split('\n').find((l) => l.startsWith('cut short: ') || l.startsWith('makedumpfile did not finish')) ?? null;
}

/** "N pages missing", or, when none are listed, why the dump is incomplete ("cut short ..."). */
export function missingText(missing: number, notes: string): string {
  const why = missing === 0 ? truncationNote(notes) : null;
  return why ? why.replace(/^cut short: /, 'cut short, ').replace(/;.*$/, '') : `${missing} pages missing`;
}

/** The word for a dump's state in one line: complete, TRUNCATED (...), DAMAGED (...), and "unverified" when it has no checksums. */
export function stateText(rec: DumpRecord): string {
  const s = rec.state === 'damaged'
    ? `DAMAGED (${rec.damaged_pages} pages damaged${rec.missing_pages ? `, ${rec.missing_pages} pages missing` : ''})`
    : rec.state === 'truncated' ? `TRUNCATED (${missingText(rec.missing_pages, rec.notes)})` : 'complete';
  return rec.checksum === 'unverified' ? `${s}, unverified (no checksums in the dump)` : s;
}

/** The degraded result a command reports for a dump that is not complete (after its normal output), or null. */
export function degradedOf(rec: DumpRecord, first?: DumpProblem): DegradedResult | null {
  if (rec.state === 'damaged') {
    const what = first ? `${first.pfn !== null ? `first PFN ${hex(first.pfn)}: ` : ''}${first.error.message}` : 'lkcd verify names each problem';
    return new DegradedResult('DUMP_DAMAGED', `dump ${rec.n} is DAMAGED: ${rec.damaged_pages} page${rec.damaged_pages === 1 ? '' : 's'} fail their checks and read as not present; ${what}`, { file: rec.dir });
  }
  if (rec.state === 'truncated') {
    const listed = rec.missing_pages > 0 || truncationNote(rec.notes) === null;
    return new DegradedResult('DUMP_TRUNCATED', `dump ${rec.n} is TRUNCATED: ${missingText(rec.missing_pages, rec.notes)}${listed ? ` (lkcd show ${rec.n} lists them by reason)` : ''}`, { file: rec.dir });
  }
  return null;
}

/** Numbers of the DUMPDIR/N directories, ascending. */
export function dumpDirNumbers(dumpdir: string): number[] {
  if (!fs.existsSync(dumpdir)) return [];
  return fs.readdirSync(dumpdir).filter((d) => /^\d{1,9}$/.test(d) && fs.statSync(path.join(dumpdir, d)).isDirectory()).map(Number).sort((a, b) => a - b);
}

export interface ReindexReport {
  indexed: DumpRecord[];
  /** Directories that hold no dump that can be opened at all, with why. */
  skipped: Array<{ n: number; reason: string }>;
}

/** Indexes every DUMPDIR/N into `index`; a directory whose dump cannot be opened at all is named and skipped. */
export function indexAllDumpDirs(index: DumpIndex, dumpdir: string, say: (line: string) => void, who = 'lkcd reindex'): ReindexReport {
  const report: ReindexReport = { indexed: [], skipped: [] };
  for (const n of dumpDirNumbers(dumpdir)) {
    try {
      const r = indexDumpDir(index, n, dumpDirOf(dumpdir, n));
      report.indexed.push(r.record);
      if (r.record.state !== 'complete' || r.record.checksum === 'unverified') say(`${who}: dump ${n}: ${stateText(r.record)}`);
    } catch (e) {
      if (!(e instanceof DumpError) || e.code === 'INTERNAL') throw e;
      const file = path.join(dumpDirOf(dumpdir, n), `dump.${n}`);
      const reason = e.message.includes(file) ? e.message : `${file}: ${e.message}`;
      report.skipped.push({ n, reason });
      say(`${who}: dump ${n} skipped, it cannot be opened: ${reason}`);
    }
  }
  return report;
}

/**
 * `lkcd reindex`: builds a new index beside the old one from the DUMPDIR/N
 * directories alone and renames it over the old one, so the old index
 * stays whole until the new one is. Every dump that opens is indexed
 * (damaged ones as damaged); one that cannot be opened at all is named
 * and skipped. The caller holds the DUMPDIR lock.
 */
export function reindexDumpDir(dumpdir: string, say: (line: string) => void, alsoIndex?: (index: DumpIndex) => void): ReindexReport {
  const next = `${INDEX_FILE}.new`;
  const dropNext = (): void => { for (const f of [next, `${next}-wal`, `${next}-shm`]) fs.rmSync(path.join(dumpdir, f), { force: true }); };
  dropNext();
  const index = DumpIndex.open(dumpdir, { fileName: next });
  let report: ReindexReport;
  try {
    report = indexAllDumpDirs(index, dumpdir, say);
    // What else the index holds beside the dumps (the pstore archive) goes into the new file too.
    alsoIndex?.(index);
  } catch (e) {
    index.close();
    dropNext();
    throw e;
  }
  // Closing the last connection checkpoints the WAL into the file and removes it.
  index.close();
  killPoint('reindex built');
  try {
    const fd = fs.openSync(path.join(dumpdir, next), 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    // The old index's WAL must not be replayed into the new file.
    for (const f of [`${INDEX_FILE}-wal`, `${INDEX_FILE}-shm`]) fs.rmSync(path.join(dumpdir, f), { force: true });
    fs.renameSync(path.join(dumpdir, next), path.join(dumpdir, INDEX_FILE));
    fsyncDir(dumpdir);
  } catch (e) {
    throw ioError('replacing the dump index', e as NodeJS.ErrnoException);
  }
  const ns = dumpDirNumbers(dumpdir);
  if (ns.length && readBounds(dumpdir) <= ns[ns.length - 1]) writeBounds(dumpdir, ns[ns.length - 1] + 1);
  return report;
}

/**
 * An index that lists no dump while DUMPDIR/N directories exist has lost
 * them (deleted, or replaced by an empty one): indexes them first, so no
 * later save hides them. Says so in one line (then one per dump that is
 * not complete or cannot be opened); returns whether it did.
 */
export function recoverEmptyIndex(index: DumpIndex, dumpdir: string, who: string, say: (line: string) => void): boolean {
  const ns = dumpDirNumbers(dumpdir);
  if (ns.length === 0 || index.listDumps().length > 0) return false;
  const found: string[] = [];
  const report = indexAllDumpDirs(index, dumpdir, (l) => found.push(l), who);
  say(`${who}: the index listed no dumps; indexed the ${report.indexed.length} found in ${dumpdir} first${report.skipped.length ? ` (${report.skipped.length} could not be opened)` : ''}`);
  for (const l of found) say(l);
  return true;
}

/**
 * The N a cut-short save of the dump `sha` chose (the device's
 * LKCD_MARK_SAVING mark), if that save can still be finished as N: the
 * index holds no other dump as N, and DUMPDIR/N is absent or is the
 * directory that save renamed into place. Null when N went to another dump.
 */
function resumableN(index: DumpIndex, dumpdir: string, n: number, sha: string): number | null {
  const indexed = index.getDump(n);
  if (indexed && (indexed.sha256 !== sha || indexed.design === 'import')) return null;
  const dir = dumpDirOf(dumpdir, n);
  if (!fs.existsSync(dir)) return n;
  // An origin file means another command (lkcd import) wrote this N: not ours to finish.
  if (fs.existsSync(path.join(dir, `origin.${n}`))) return null;
  const file = path.join(dir, `dump.${n}`);
  return fs.existsSync(file) && sha256File(file) === sha ? n : null;
}

/**
 * `lkcd save`: finds a dump on DUMPDEV, copies it to DUMPDIR/N/ (dump.N,
 * map.N, kerntypes.N, analysis.N, and vmlinux.N when the build's debug
 * vmlinux has the dump kernel's build ID) through a temporary directory, opens the
 * copy through the format table and checks it whole, renames it into
 * place, indexes it (a damaged dump as damaged, its bad pages named),
 * bumps `bounds`, and only then marks the device dump as saved. Killed at
 * any point, a rerun finishes the job without a duplicate or a gap: the
 * device's mark names the dump by sha256 and the N its save chose before
 * anything was written. A dump identical to one already saved but not
 * marked on this device is another crash's, saved as a new N.
 */
export function lkcdSave(root: MachineRoot): SaveReport {
  const sys = openSystem(root, { readOnly: true });
  const release = sys.kernel.release;
  closeSystem(sys);
  const conf = loadSysconfig(root.sysconfigPath, root.dir, release);
  if (!conf.DUMP_SAVE) return { lines: ['lkcd save: DUMP_SAVE=0 in etc/sysconfig/dump: not saving'], n: null };
  // No device yet (lkcd config creates it): nothing to save is a normal state, not an error.
  if (!fs.existsSync(conf.DUMPDEV)) return { lines: [`lkcd save: no dump on ${conf.DUMPDEV}: it does not exist yet (lkcd config creates it)`], n: null };
  ensureDir(conf.DUMPDIR, 0o700);
  const unlock = acquireSaveLock(conf.DUMPDIR);
  const dev = BlockDevice.open(conf.DUMPDEV, { write: true });
  let index: DumpIndex | null = null;
  const lines: string[] = [];
  try {
    const found = findDeviceDump(dev);
    if (!found) return { lines: [`lkcd save: no dump on ${conf.DUMPDEV}`], n: null };
    // The device's mark tells this dump's own save from an identical dump of another crash. Only a
    // device that carries one needs the dump's sha256 before the copy (a writeout clears the mark):
    // otherwise the copy hashes what it writes, and the dump is read once.
    const mark = readDeviceMark(dev);
    let sha: string | null = mark ? deviceDumpSha256(dev, found) : null;
    const mine = mark && mark.sha256 === sha ? mark : null;
    if (mine?.state === 'saved') return { lines: [`lkcd save: the dump on ${conf.DUMPDEV} was already saved as ${mine.n}`], n: mine.n };
    index = DumpIndex.open(conf.DUMPDIR);
    recoverEmptyIndex(index, conf.DUMPDIR, 'lkcd save', (l) => lines.push(l));
    // A save of this very dump cut short: finish it as the N it chose, from wherever it stopped.
    let n = mine?.state === 'saving' ? resumableN(index, conf.DUMPDIR, mine.n, mine.sha256) : null;
    if (mine && n !== null && index.getDump(n)?.sha256 === mine.sha256) {
      if (readBounds(conf.DUMPDIR) <= n) writeBounds(conf.DUMPDIR, n + 1);
      writeSavedMark(dev, mine.sha256, n);
      return { lines: [...lines, `lkcd save: the dump on ${conf.DUMPDEV} is dump ${n}; marked saved`], n };
    }
    // The device's first page as it was, put back if this save fails before anything is in DUMPDIR.
    let unmarked: Buffer | null = null;
    const markSaving = (dumpSha: string, as: number): void => {
      unmarked = dev.read(0n, PAGE_SIZE);
      writeSavingMark(dev, dumpSha, as);
      killPoint('save marked saving');
    };
    if (n === null) {
      n = readBounds(conf.DUMPDIR);
      while (fs.existsSync(dumpDirOf(conf.DUMPDIR, n))) n++;
      if (sha !== null) markSaving(sha, n);
    }
    const dir = dumpDirOf(conf.DUMPDIR, n);
    // Filled while the copy is written, so indexing it reads nothing twice; empty when a save
    // killed after the rename is being finished.
    const known: KnownDump = {};
    let vmlinuxLine: string | null = null;
    const deviceLines: string[] = [];
    let r: { n: number; inserted: boolean; record: DumpRecord };
    let sameAs: DumpRecord | null;
    try {
      if (!fs.existsSync(dir)) {
        const tmp = path.join(conf.DUMPDIR, `.saving-${n}`);
        fs.rmSync(tmp, { recursive: true, force: true });
        ensureDir(tmp, 0o700);
        try {
          const file = path.join(tmp, `dump.${n}`);
          // One pass over the device dump copies it to dump.N, hashes the copy and checks it whole
          // through the format table (checksums, records, every page decoded on native threads
          // meanwhile). Opened in the temporary directory, it stays open across the rename.
          const copy = CopyingSource.open(dev, found, file, { enospcAfter: enospcAfter() });
          known.dump = openSavedDump(copy);
          const copied = copy.finish();
          if (sha !== null && copied !== sha) throw new DumpError('IO', `${file}: the copy does not match the device (sha256 differs)`, { file });
          if (sha === null) {
            // A fresh save (no mark): marked now, still before anything is renamed into DUMPDIR.
            sha = copied;
            markSaving(sha, n);
          }
          const built = buildFileNames(root.bootDir, found.header.dh_utsname_release);
          copyFile0600(built.systemMap, path.join(tmp, `map.${n}`));
          copyFile0600(built.kerntypes, path.join(tmp, `kerntypes.${n}`));
          const syms = SymbolTable.load(path.join(tmp, `map.${n}`));
          known.facts = readDumpFacts(known.dump, syms);
          vmlinuxLine = saveVmlinux(root.bootDir, found.header.dh_utsname_release, known.dump, syms.byName, tmp, n);
          known.findings = findingsOf(known.dump, known.facts);
          const devs = deviceDumpsOf(known.dump);
          if (devs.length) {
            writeDeviceDumps(tmp, devs);
            known.devices = devs.flatMap((d) => (d.row ? [d.row] : []));
            for (const d of devs) if (d.problem) deviceLines.push(`lkcd save: device dump ${d.name} is damaged and was not saved: ${d.problem}`);
          }
          const f = known.findings;
          const text = analysisText(n, known.dump, known.facts, {
            pages: known.dump.attrs['dump.pages'], compressed: f.compressed, storedBytes: Number(found.end - found.start), missingPages: f.missingPages,
            damagedPages: f.damaged.length, state: f.integrity.state, checksum: f.integrity.checksum,
          });
          writeNewFile0600(path.join(tmp, `analysis.${n}`), text);
          copy.sync();
          fsyncDir(tmp);
          killPoint('save files written');
          fs.renameSync(tmp, dir);
          fsyncDir(conf.DUMPDIR);
          killPoint('save renamed');
        } catch (e) {
          // Nothing half-written is left to look like a dump; the device dump stays unsaved, as it was.
          known.dump?.close();
          known.dump = undefined;
          fs.rmSync(tmp, { recursive: true, force: true });
          if (unmarked) {
            dev.write(0n, unmarked);
            dev.sync();
          }
          throw e;
        }
      }
      // Finishing a save killed after its rename: the dump was hashed before (the device's mark).
      if (sha === null) throw new InternalError('lkcd save: no sha256 of the dump to index');
      // Not marked on this device, yet byte-identical to a dump already saved: another crash (or this
      // device restored from a copy), saved as a dump of its own, which says which one it matches.
      sameAs = index.findBySha256(sha);
      known.sha = sha;
      r = indexDumpDir(index, n, dir, known);
    } finally {
      known.dump?.close();
    }
    killPoint('save indexed');
    writeBounds(conf.DUMPDIR, Math.max(readBounds(conf.DUMPDIR), n + 1));
    killPoint('save bounds');
    writeSavedMark(dev, sha, n);
    const rec = r.record;
    lines.push(`lkcd save: saved dump ${n} to ${dir}: ${rec.pages} pages, ${rec.stored_bytes} bytes, ${stateText(rec)}; panic "${rec.panic_string}"`);
    if (vmlinuxLine) lines.push(vmlinuxLine);
    if (sameAs && sameAs.n !== n) lines.push(`lkcd save: dump ${n} is byte-identical to dump ${sameAs.n} (same sha256), but the dump on ${conf.DUMPDEV} was not marked saved: another crash, kept as a dump of its own`);
    const devRows = index.deviceDumps(n);
    if (devRows.length) lines.push(`lkcd save: dump ${n} carries ${devRows.length} device dump${devRows.length === 1 ? '' : 's'}, saved in ${path.join(dir, DEVICES_SUBDIR)}: ${devRows.map((d) => `${d.name} (${d.size} bytes)`).join(', ')}`);
    lines.push(...deviceLines);
    if (rec.state === 'damaged') {
      const shown: string[] = [];
      for (const m of index.missing(n)) {
        if (m.reason !== 'damaged') continue;
        for (let p = m.start_pfn; p < m.end_pfn && shown.length < 8; p++) shown.push(hex(p * PAGE_SIZE_N));
      }
      if (shown.length) lines.push(`lkcd save: dump ${n}: damaged pages, kept in dump.${n} but read as not present: paddr ${shown.join(', ')}${rec.damaged_pages > shown.length ? ', ...' : ''}`);
    }
    const problems = known.findings?.integrity.problems ?? [];
    return { lines, n, degraded: degradedOf(rec, problems.find((p) => p.pfn !== null) ?? problems[0]) ?? undefined };
  } finally {
    index?.close();
    dev.close();
    unlock();
  }
}

/** Pages of dump.N whose record data no longer has the CRC32 the index recorded at save time. */
export function pagesFailingIndexCrc(file: string, rows: Iterable<PageRow>): PageRow[] {
  const bad: PageRow[] = [];
  const fd = fs.openSync(file, 'r');
  const data = Buffer.alloc(4096);
  try {
    for (const r of rows) {
      if (r.crc32 == null) continue;
      const n = fs.readSync(fd, data, 0, r.size, Number(r.offset) + 16);
      if (n !== r.size || (zlib.crc32(data.subarray(0, r.size)) >>> 0) !== r.crc32) bad.push(r);
    }
  } finally {
    fs.closeSync(fd);
  }
  return bad;
}
