/**
 * Adds a dump that lkcd save did not take off the dump device to DUMPDIR
 * as the next N, through the same crash-safe path as lkcd save: everything
 * is written in a temporary directory (0700, files 0600, each fsynced),
 * the dump is opened through the format table and checked whole there,
 * the directory is renamed into place and DUMPDIR fsynced, then the dump
 * is indexed and `bounds` bumped. Killed at any point, a rerun finishes the
 * job (a directory renamed into place but not indexed is found by its
 * sha256) without a duplicate or a gap. Used by `lkcd import` (the file is
 * copied in as dump.N) and by kdumpctl save (the vmcore stays where it
 * was written and origin.N points at it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { DegradedResult, DumpError, ioError } from '../src/codec/index.js';
import { ensureDir, fsyncDir, type MachineRoot } from '../src/machine/index.js';
import { buildFileNames } from '../src/kernel/index.js';
import { killPoint } from '../src/dump/index.js';
import { DumpIndex, type DumpDesign, type DumpRecord } from '../src/store/index.js';
import { analysisText, panicFromLog, readDumpFacts } from './analysis.js';
import { saveVmlinux } from './debuginfo.js';
import { acquireSaveLock, dumpDirOf, readBounds, writeBounds } from './dumpdir.js';
import { dumpFileOf, readOrigin, writeOrigin, type DumpOrigin } from './origin.js';
import {
  degradedOf, findingsOf, indexDumpDir, openSavedDump, recoverEmptyIndex, sha256File, stateText, writeNewFile0600, type KnownDump,
} from './save.js';
import { SymbolTable } from './symbols.js';
import { sysconfigFor } from './query.js';

export interface NewDump {
  design: DumpDesign;
  /** The dump file as it is now (absolute). */
  file: string;
  /** Copy it in as DUMPDIR/N/dump.N (lkcd import), or leave it where it is and point at it (kdump). */
  copy: boolean;
  /** A System.map to keep as map.N; null: none. */
  map: string | null;
  /** A Kerntypes file to keep as kerntypes.N; null: none. */
  kerntypes: string | null;
  /** Recorded in origin.N and the index as where an import came from. */
  source: string;
  /** Where the machine's kernel builds are: map.N, kerntypes.N and vmlinux.N of the dump's release are taken from here when not given. */
  bootDir?: string;
  /** The command, for its lines ("lkcd import", "kdumpctl save"). */
  who: string;
}

export interface AddReport {
  lines: string[];
  n: number;
  record: DumpRecord;
  /** The file was indexed before (same sha256): nothing was added; `n` is that dump. */
  already: boolean;
  degraded?: DegradedResult;
}

/** Copies a file (0600), fsynced. */
function copyIn(from: string, to: string): void {
  try {
    fs.copyFileSync(from, to, fs.constants.COPYFILE_EXCL);
    fs.chmodSync(to, 0o600);
    const fd = fs.openSync(to, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
  } catch (e) {
    throw ioError(`copying ${from}`, e as NodeJS.ErrnoException);
  }
}

/** The N the dump gets: the next free one, or the one a killed run already renamed into place with this dump. */
function nextNumber(dumpdir: string, sha: string): number {
  for (let n = readBounds(dumpdir); ; n++) {
    const dir = dumpDirOf(dumpdir, n);
    if (!fs.existsSync(dir)) return n;
    let file: string;
    try {
      file = dumpFileOf(dir, readOrigin(dir, n));
    } catch (e) {
      if (e instanceof DumpError) continue;
      throw e;
    }
    if (fs.existsSync(file) && sha256File(file) === sha) return n;
  }
}

/** Adds `d` to DUMPDIR (see the module comment). The caller has checked its paths. */
export function addDump(dumpdir: string, d: NewDump): AddReport {
  ensureDir(dumpdir, 0o700);
  const unlock = acquireSaveLock(dumpdir);
  let index: DumpIndex | null = null;
  const lines: string[] = [];
  try {
    index = DumpIndex.open(dumpdir);
    recoverEmptyIndex(index, dumpdir, d.who, (l) => lines.push(l));
    const sha = sha256File(d.file);
    const indexed = index.findBySha256(sha);
    if (indexed) {
      // A run killed after indexing left bounds behind: bring it up, as lkcd save does.
      if (readBounds(dumpdir) <= indexed.n) writeBounds(dumpdir, indexed.n + 1);
      return { lines, n: indexed.n, record: indexed, already: true };
    }
    const n = nextNumber(dumpdir, sha);
    const dir = dumpDirOf(dumpdir, n);
    const known: KnownDump = { sha };
    let vmlinuxLine: string | null = null;
    let r: ReturnType<typeof indexDumpDir>;
    try {
      if (!fs.existsSync(dir)) {
        const tmp = path.join(dumpdir, `.adding-${n}`);
        fs.rmSync(tmp, { recursive: true, force: true });
        ensureDir(tmp, 0o700);
        try {
          // The dump file relative to where the directory will be (DUMPDIR/N), so the root can move.
          const origin: DumpOrigin = { design: d.design, file: d.copy ? `dump.${n}` : path.relative(dir, d.file), source: d.source };
          const file = d.copy ? path.join(tmp, `dump.${n}`) : d.file;
          if (d.copy) {
            copyIn(d.file, file);
            if (sha256File(file) !== sha) throw new DumpError('IO', `${file}: the copy does not match ${d.file} (sha256 differs)`, { file });
          }
          writeOrigin(tmp, n, origin);
          known.origin = origin;
          known.dump = openSavedDump(file);
          const release = known.dump.attrs['linux.uts.release'];
          const built = d.bootDir && release ? buildFileNames(d.bootDir, release) : null;
          const map = d.map ?? (built && fs.existsSync(built.systemMap) ? built.systemMap : null);
          const kerntypes = d.kerntypes ?? (built && fs.existsSync(built.kerntypes) ? built.kerntypes : null);
          if (map) copyIn(map, path.join(tmp, `map.${n}`));
          if (kerntypes) copyIn(kerntypes, path.join(tmp, `kerntypes.${n}`));
          const syms = map ? SymbolTable.load(path.join(tmp, `map.${n}`)) : null;
          known.facts = readDumpFacts(known.dump, syms);
          if (d.bootDir && release) vmlinuxLine = saveVmlinux(d.bootDir, release, known.dump, syms?.byName ?? null, tmp, n)?.replace(/^lkcd save:/, `${d.who}:`) ?? null;
          known.findings = findingsOf(known.dump, known.facts);
          const f = known.findings;
          const text = analysisText(n, known.dump, known.facts, {
            pages: known.dump.attrs['dump.pages'], compressed: f.compressed, storedBytes: fs.statSync(file).size, missingPages: f.missingPages,
            damagedPages: f.damaged.length, state: f.integrity.state, checksum: f.integrity.checksum, panic: panicFromLog(known.facts.log) ?? undefined,
          });
          writeNewFile0600(path.join(tmp, `analysis.${n}`), text);
          fsyncDir(tmp);
          killPoint('add files written');
          fs.renameSync(tmp, dir);
          fsyncDir(dumpdir);
          killPoint('add renamed');
        } catch (e) {
          // Nothing half-written is left to look like a dump.
          fs.rmSync(tmp, { recursive: true, force: true });
          throw e;
        }
      }
      r = indexDumpDir(index, n, dir, known);
    } finally {
      known.dump?.close();
    }
    killPoint('add indexed');
    writeBounds(dumpdir, Math.max(readBounds(dumpdir), n + 1));
    const rec = r.record;
    lines.push(`${d.who}: ${d.copy ? 'imported' : 'indexed'} ${d.file} as dump ${n} (design ${rec.design}, format ${rec.format}${rec.rle_convention ? `, RLE runs read the ${rec.rle_convention} way` : ''}): ` +
      `${rec.pages} pages, ${rec.stored_bytes} bytes, ${stateText(rec)}${rec.panic_string ? `; panic "${rec.panic_string}"` : ''}`);
    if (rec.log_error) lines.push(`${d.who}: dump ${n}: no kernel log: ${rec.log_error}`);
    if (vmlinuxLine) lines.push(vmlinuxLine);
    const problems = known.findings?.integrity.problems ?? [];
    return { lines, n, record: rec, already: false, degraded: degradedOf(rec, problems.find((p) => p.pfn !== null) ?? problems[0]) ?? undefined };
  } finally {
    index?.close();
    unlock();
  }
}

/**
 * Indexes a vmcore a capture kernel's save wrote (kdumpctl save), without
 * copying it: DUMPDIR/N gets origin.N pointing at it, map.N, kerntypes.N
 * and vmlinux.N of the dump's release from the machine's boot/, analysis.N.
 * DUMPDIR comes from etc/sysconfig/dump (its default when there is none).
 */
export function indexCapturedVmcore(root: MachineRoot, design: DumpDesign, vmcore: string): AddReport {
  const conf = sysconfigFor(root);
  return addDump(conf.DUMPDIR, { design, file: path.resolve(vmcore), copy: false, map: null, kerntypes: null, source: '', bootDir: root.bootDir, who: 'kdumpctl save' });
}
