import crypto from 'node:crypto';
import zlib from 'node:zlib';
import fs from 'node:fs';
import path from 'node:path';
import { CorruptDumpError, DumpError, ioError } from '../src/codec/index.js';
import { ensureDir, fsyncDir, type MachineRoot } from '../src/machine/index.js';
import { buildFileNames, closeSystem, openSystem } from '../src/kernel/index.js';
import {
  BlockDevice, deviceDumpSha256, findDeviceDump, killPoint, openLkcdFile, readSavedMark, verifyLkcd, writeSavedMark,
  type DeviceDump, type LkcdDump, type LkcdVerifyResult,
} from '../src/dump/index.js';
import { DumpIndex, panicSignature, type DumpRecord, type LogLine, type PageRow } from '../src/store/index.js';
import { progressBar } from '../src/cli/progress.js';
import { analysisText, readDumpFacts, type DumpFacts } from './analysis.js';
import { acquireSaveLock, dumpDirOf, readBounds, writeBounds } from './dumpdir.js';
import { loadSysconfig } from './sysconfig.js';
import { SymbolTable } from './symbols.js';
import { saveVmlinux } from './debuginfo.js';

export interface SaveReport { lines: string[]; n: number | null }

/**
 * LKCD_FAULT_SAVE_ENOSPC_AFTER=BYTES makes the copy fail with ENOSPC after
 * that many bytes, as a full DUMPDIR would (the fault matrix).
 */
function enospcAfter(): bigint | null {
  const v = process.env.LKCD_FAULT_SAVE_ENOSPC_AFTER;
  return v && /^\d+$/.test(v) ? BigInt(v) : null;
}

/** Copies [start, end) of the device into a new file (0600), fsynced. */
function copyOut(dev: BlockDevice, d: DeviceDump, file: string): void {
  const fd = fs.openSync(file, 'w', 0o600);
  const limit = enospcAfter();
  const bar = progressBar('lkcd save: copy');
  try {
    const chunk = 4 << 20;
    for (let off = d.start; off < d.end; off += BigInt(chunk)) {
      const n = Number(d.end - off < BigInt(chunk) ? d.end - off : BigInt(chunk));
      const buf = dev.read(off, n);
      if (limit !== null && off - d.start + BigInt(n) > limit) {
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write', path: file });
      }
      let done = 0;
      while (done < n) done += fs.writeSync(fd, buf, done, n - done);
      bar(off + BigInt(n) - d.start, d.end - d.start);
      killPoint('save copy');
    }
    fs.fsyncSync(fd);
  } catch (e) {
    throw e instanceof DumpError ? e : ioError("copying the dump", e as NodeJS.ErrnoException);
  } finally {
    fs.closeSync(fd);
    bar.end();
  }
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

/** The index record of a saved dump, from its file, its verification and what was read out of it. */
export function dumpRecordOf(n: number, dir: string, dump: LkcdDump, sha: string, storedBytes: number, compressed: number, missingPages: number, callSite: string): DumpRecord {
  const a = dump.attrs;
  const sig = panicSignature(a['crash.panic_string'], callSite);
  return {
    n, dir, time_sec: Number(a['crash.time']), time_usec: Number(dump.header.dh_time.tv_usec),
    host: a['linux.uts.nodename'], release: a['linux.uts.release'], version: a['linux.uts.version'], machine: a['linux.uts.machine'],
    panic_string: a['crash.panic_string'], level: a['dump.level'], compress: dump.header.dh_dump_compress, flags: a['dump.flags'],
    pages: a['dump.pages'], pages_compressed: compressed, raw_bytes: a['dump.pages'] * a['arch.page_size'], stored_bytes: storedBytes,
    complete: !a['dump.truncated'] && missingPages === 0, missing_pages: missingPages, sha256: sha,
    signature: sig.signature, signature_text: sig.text, saved_at: Math.floor(Date.now() / 1000),
  };
}

/** What `lkcd save` already knows of a dump it just wrote, so indexing reads it no further. */
export interface KnownDump {
  sha?: string;
  verified?: LkcdVerifyResult;
  dump?: LkcdDump;
  facts?: DumpFacts;
}

/**
 * Indexes dump N: from its directory alone (as `lkcd reindex` does), or
 * from what `lkcd save` already read while writing it.
 */
export function indexDumpDir(index: DumpIndex, n: number, dir: string, known: KnownDump = {}): { n: number; inserted: boolean } {
  const file = path.join(dir, `dump.${n}`);
  const v = known.verified ?? verifyLkcd(file);
  if (v.bad.length) throw new CorruptDumpError(`${file}: ${v.bad.length} bad records, first at offset ${v.bad[0].offset}: ${v.bad[0].error.message}`, { file });
  const dump = known.dump ?? openLkcdFile(file);
  try {
    const facts = known.facts ?? readDumpFacts(dump, SymbolTable.load(path.join(dir, `map.${n}`)));
    const missingPages = v.missingRanges.reduce((x, [s, e]) => x + Number(e - s), 0);
    const rec = dumpRecordOf(n, dir, dump, known.sha ?? sha256File(file), fs.statSync(file).size, v.compressed, missingPages, facts.callSite);
    const fd = fs.openSync(file, 'r');
    const data = Buffer.alloc(4096);
    const pages = function* (): Generator<PageRow> {
      for (const pfn of dump.pages()) {
        const r = dump.record(pfn)!;
        // A checksum of each record's data, so `lkcd verify` can name a damaged page even when it is raw.
        fs.readSync(fd, data, 0, r.size, Number(r.offset) + 16);
        yield { pfn, offset: r.offset, size: r.size, flags: r.flags, crc32: zlib.crc32(data.subarray(0, r.size)) >>> 0 };
      }
    };
    const log: LogLine[] = (facts.log ?? []).map((l) => ({ seq: Number(l.seq), ts_nsec: l.ts_nsec, level: l.level, text: l.text }));
    try {
      return index.addDump(rec, pages(), log, v.missingRanges.map(([start_pfn, end_pfn]) => ({ start_pfn, end_pfn })));
    } finally {
      fs.closeSync(fd);
    }
  } finally {
    if (!known.dump) dump.close();
  }
}

/**
 * `lkcd save`: finds a valid dump on DUMPDEV, copies it to DUMPDIR/N/
 * (dump.N, map.N, kerntypes.N, analysis.N, and vmlinux.N when the build's
 * debug vmlinux has the dump kernel's build ID) through a temporary directory,
 * verifies the copy, renames it into place, indexes it, bumps `bounds`, and
 * only then marks the device dump as saved. Killed at any point, a rerun
 * finishes the job without a duplicate or a gap: the dump is known by its
 * sha256.
 */
export function lkcdSave(root: MachineRoot): SaveReport {
  const sys = openSystem(root, { readOnly: true });
  const release = sys.kernel.release;
  closeSystem(sys);
  const conf = loadSysconfig(root.sysconfigPath, root.dir, release);
  if (!conf.DUMP_SAVE) return { lines: ['lkcd save: DUMP_SAVE=0 in etc/sysconfig/dump: not saving'], n: null };
  ensureDir(conf.DUMPDIR, 0o700);
  const unlock = acquireSaveLock(conf.DUMPDIR);
  const dev = BlockDevice.open(conf.DUMPDEV, { write: true });
  let index: DumpIndex | null = null;
  try {
    const found = findDeviceDump(dev);
    if (!found) return { lines: [`lkcd save: no dump on ${conf.DUMPDEV}`], n: null };
    const sha = deviceDumpSha256(dev, found);
    const mark = readSavedMark(dev);
    if (mark && mark.sha256 === sha) return { lines: [`lkcd save: the dump on ${conf.DUMPDEV} was already saved as ${mark.n}`], n: mark.n };
    index = DumpIndex.open(conf.DUMPDIR);
    const indexed = index.findBySha256(sha);
    if (indexed) {
      if (readBounds(conf.DUMPDIR) <= indexed.n) writeBounds(conf.DUMPDIR, indexed.n + 1);
      writeSavedMark(dev, sha, indexed.n);
      return { lines: [`lkcd save: the dump on ${conf.DUMPDEV} is dump ${indexed.n}; marked saved`], n: indexed.n };
    }
    let n = readBounds(conf.DUMPDIR);
    for (;;) {
      const dir = dumpDirOf(conf.DUMPDIR, n);
      if (!fs.existsSync(dir)) break;
      const f = path.join(dir, `dump.${n}`);
      // A directory renamed into place by a save killed before indexing: finish that save.
      if (fs.existsSync(f) && sha256File(f) === sha) break;
      n++;
    }
    const dir = dumpDirOf(conf.DUMPDIR, n);
    // Filled while the copy is written, so indexing it reads nothing twice; empty when a save
    // killed after the rename is being finished.
    const known: KnownDump = { sha };
    let vmlinuxLine: string | null = null;
    let r: { n: number; inserted: boolean };
    try {
      if (!fs.existsSync(dir)) {
        const tmp = path.join(conf.DUMPDIR, `.saving-${n}`);
        fs.rmSync(tmp, { recursive: true, force: true });
        ensureDir(tmp, 0o700);
        try {
          const file = path.join(tmp, `dump.${n}`);
          copyOut(dev, found, file);
          if (sha256File(file) !== sha) throw new DumpError('IO', `${file}: the copy does not match the device (sha256 differs)`, { file });
          const v = verifyLkcd(file);
          if (v.bad.length) {
            throw new CorruptDumpError(`${conf.DUMPDEV}: the dump does not verify: ${v.bad.length} bad records, first: ${v.bad[0].error.message}`, { file: conf.DUMPDEV });
          }
          known.verified = v;
          const built = buildFileNames(root.bootDir, found.header.dh_utsname_release);
          copyFile0600(built.systemMap, path.join(tmp, `map.${n}`));
          copyFile0600(built.kerntypes, path.join(tmp, `kerntypes.${n}`));
          // Opened in the temporary directory, it stays open across the rename (same file).
          known.dump = openLkcdFile(file);
          const syms = SymbolTable.load(path.join(tmp, `map.${n}`));
          known.facts = readDumpFacts(known.dump, syms);
          vmlinuxLine = saveVmlinux(root.bootDir, found.header.dh_utsname_release, known.dump, syms.byName, tmp, n);
          const missingPages = v.missingRanges.reduce((x, [s, e]) => x + Number(e - s), 0);
          const text = analysisText(n, known.dump, known.facts, { pages: v.pages, compressed: v.compressed, storedBytes: Number(found.end - found.start), missingPages });
          fs.writeFileSync(path.join(tmp, `analysis.${n}`), text, { mode: 0o600 });
          fsyncDir(tmp);
          killPoint('save files written');
          fs.renameSync(tmp, dir);
          fsyncDir(conf.DUMPDIR);
          killPoint('save renamed');
        } catch (e) {
          // Nothing half-written is left to look like a dump; the device dump stays unsaved.
          fs.rmSync(tmp, { recursive: true, force: true });
          throw e;
        }
      }
      r = indexDumpDir(index, n, dir, known);
    } finally {
      known.dump?.close();
    }
    killPoint('save indexed');
    writeBounds(conf.DUMPDIR, Math.max(readBounds(conf.DUMPDIR), n + 1));
    killPoint('save bounds');
    writeSavedMark(dev, sha, n);
    const rec = index.getDump(r.n)!;
    return {
      lines: [
        `lkcd save: saved dump ${n} to ${dir}: ${rec.pages} pages, ${rec.stored_bytes} bytes, ${rec.complete ? 'complete' : `TRUNCATED (${rec.missing_pages} pages missing)`}; panic "${rec.panic_string}"`,
        ...(vmlinuxLine ? [vmlinuxLine] : []),
      ],
      n,
    };
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
