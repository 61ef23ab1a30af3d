import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ioError } from '../src/codec/index.js';
import { ensureDir, fsyncDir, type MachineRoot } from '../src/machine/index.js';
import { closeSystem, openSystem, Sysfs, type SysfsFile } from '../src/kernel/index.js';
import { DumpIndex, PstoreIndex, type LogLine, type PstoreListed, type PstoreRecordRow } from '../src/store/index.js';
import { acquireSaveLock } from './dumpdir.js';
import { loadSysconfig } from './sysconfig.js';

/** Where `lkcd pstore save` archives: DUMPDIR/pstore/<date>/. */
export const PSTORE_ARCHIVE_DIR = 'pstore';

/** What one pstore file says about the crash it comes from. */
export interface PstoreFacts {
  type: string;
  recordId: number;
  compressed: boolean;
  reason: string;
  oopsCount: number;
  panicString: string;
  eccNotice: string;
  lines: LogLine[];
}

const ECC_NOTICE = /\nECC: (No errors detected|\d+ Corrected bytes, \d+ unrecoverable blocks)\n$/;

/**
 * Reads a pstore file as systemd-pstore and a person would: its name gives
 * type and record id; a dmesg record starts "Panic#N Part1" and holds
 * syslog lines "<L>[sec.usec] text"; a console record holds "[sec.usec]
 * text"; the ECC notice pstore appends is kept apart. A record left
 * compressed (.enc.z) and the binary devcoredump ELF yield no lines.
 */
export function pstoreFacts(name: string, data: Uint8Array): PstoreFacts {
  const m = /^([a-z-]+?)-([a-z0-9_]+)-(\d+)(\.enc\.z)?$/.exec(name);
  const type = m?.[1] ?? 'unknown';
  const facts: PstoreFacts = { type, recordId: m ? Number(m[3]) : 0, compressed: !!m?.[4], reason: '', oopsCount: 0, panicString: '', eccNotice: '', lines: [] };
  if (facts.compressed || type === 'devcoredump' || type === 'unknown') {
    const tail = Buffer.from(data.subarray(Math.max(0, data.length - 80))).toString('latin1');
    facts.eccNotice = ECC_NOTICE.exec(tail)?.[0].trim() ?? '';
    return facts;
  }
  let text = Buffer.from(data).toString('latin1');
  const ecc = ECC_NOTICE.exec(text);
  if (ecc) {
    facts.eccNotice = ecc[0].trim();
    text = text.slice(0, ecc.index);
  }
  const rows = text.split('\n');
  if (type === 'dmesg') {
    const h = /^(\w+)#(\d+) Part\d+$/.exec(rows[0] ?? '');
    if (h) {
      facts.reason = h[1];
      facts.oopsCount = Number(h[2]);
      rows.shift();
    }
  }
  let seq = 0;
  for (const row of rows) {
    const l = /^(?:<(\d+)>)?\[\s*(\d+)\.(\d{6})\] (.*)$/.exec(row);
    if (!l) continue;
    const line: LogLine = { seq: seq++, ts_nsec: BigInt(l[2]) * 1_000_000_000n + BigInt(l[3]) * 1000n, level: l[1] === undefined ? -1 : Number(l[1]) & 7, text: l[4] };
    facts.lines.push(line);
    const p = /^Kernel panic - not syncing: (.*)$/.exec(line.text);
    if (p) facts.panicString = p[1];
  }
  return facts;
}

function sha256(data: Uint8Array): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** DUMPDIR/pstore/<date>: the crash's UTC time as YYYY-MM-DD-HHMMSS. */
function dateDirName(sec: number): string {
  const iso = new Date(sec * 1000).toISOString();
  return `${iso.slice(0, 10)}-${iso.slice(11, 19).replace(/:/g, '')}`;
}

interface Taken { file: SysfsFile; data: Buffer; sha: string; facts: PstoreFacts }

export interface PstoreSaveReport { lines: string[]; dir: string | null; records: number[] }

/**
 * `lkcd pstore save`, the archiver (as systemd-pstore does it): copies
 * every file of the running kernel's /sys/fs/pstore to
 * DUMPDIR/pstore/<date>/ (0600 files in a 0700 directory, written aside,
 * fsynced, renamed into place), indexes each with its log lines beside the
 * dumps' (lkcd search finds both) and its crash facts (which link it to a
 * dump of the same crash), and only then unlinks it from pstorefs, which
 * erases the record from persistent RAM. A record already archived (same
 * sha256 and time) is only unlinked, so a rerun after a kill neither loses
 * nor duplicates anything.
 */
export function lkcdPstoreSave(root: MachineRoot): PstoreSaveReport {
  const sys = openSystem(root);
  try {
    const conf = loadSysconfig(root.sysconfigPath, root.dir, sys.kernel.release);
    const sysfs = new Sysfs(sys.kernel);
    if (!sysfs.exists('fs/pstore')) {
      return { lines: ['lkcd pstore save: no pstore backend in the running kernel (boot it with ramoops.* parameters)'], dir: null, records: [] };
    }
    const files = sysfs.list('fs/pstore').filter((e): e is SysfsFile => e.kind === 'file');
    if (!files.length) return { lines: ['lkcd pstore save: /sys/fs/pstore is empty'], dir: null, records: [] };
    const taken: Taken[] = files.map((file) => {
      const data = file.read();
      return { file, data, sha: sha256(data), facts: pstoreFacts(file.name, data) };
    });
    ensureDir(conf.DUMPDIR, 0o700);
    const unlock = acquireSaveLock(conf.DUMPDIR);
    const index = DumpIndex.open(conf.DUMPDIR);
    try {
      const pidx = PstoreIndex.of(index);
      // A record is its bytes and its time: the same bytes from another crash are archived again.
      const fresh = taken.filter((t) => !pidx.findRecord(t.sha, Number(t.file.mtimeSec)));
      const lines: string[] = [];
      const ids: number[] = [];
      let dir: string | null = null;
      if (fresh.length) {
        const crash = crashOf(taken);
        dir = archive(path.join(conf.DUMPDIR, PSTORE_ARCHIVE_DIR), dateDirName(crash.time || Number(fresh[0].file.mtimeSec)), fresh);
        const now = Math.floor(Date.now() / 1000);
        for (const t of fresh) {
          const own = t.facts.type === 'dmesg' && t.facts.panicString !== '';
          const row: PstoreRecordRow = {
            dir, file: t.file.name, type: t.facts.type, record_id: t.facts.recordId, time_sec: Number(t.file.mtimeSec),
            crash_time: own ? Number(t.file.mtimeSec) : crash.time, size: t.data.length, compressed: t.facts.compressed,
            reason: t.facts.reason, oops_count: t.facts.oopsCount, panic_string: own ? t.facts.panicString : crash.panicString,
            ecc_notice: t.facts.eccNotice, sha256: t.sha, saved_at: now,
          };
          ids.push(pidx.add(row, t.facts.lines).id);
        }
      }
      // Archived and indexed: now the records may leave persistent RAM.
      for (const t of taken) sysfs.unlink(`fs/pstore/${t.file.name}`);
      sys.ram.flush();
      const linked = ids.map((id) => pidx.list().find((r) => r.id === id)?.dump_n).find((n) => n !== null && n !== undefined);
      if (dir) {
        lines.push(`lkcd pstore save: archived ${fresh.length} record${fresh.length === 1 ? '' : 's'} to ${dir}: ${fresh.map((t) => describe(t)).join(', ')}`);
        lines.push(linked !== undefined ? `lkcd pstore save: the crash's full dump is dump ${linked}` : 'lkcd pstore save: no saved dump of the same crash (yet)');
      }
      const again = taken.length - fresh.length;
      if (again) lines.push(`lkcd pstore save: ${again} record${again === 1 ? ' was' : 's were'} already archived; removed from /sys/fs/pstore`);
      return { lines, dir, records: ids };
    } finally {
      index.close();
      unlock();
    }
  } finally {
    closeSystem(sys);
  }
}

function describe(t: Taken): string {
  const what = t.facts.reason ? `${t.facts.reason}#${t.facts.oopsCount}` : t.facts.type === 'devcoredump' ? 'device coredump' : `${t.data.length} bytes`;
  return `${t.file.name} (${what}${t.facts.eccNotice && !/No errors/.test(t.facts.eccNotice) ? `; ${t.facts.eccNotice}` : ''})`;
}

/**
 * The crash the files come from: the newest Panic record (else the newest
 * dmesg record, else the device coredump) gives the time; the panic string
 * comes from that record, or from the console's last panic line.
 */
function crashOf(taken: readonly Taken[]): { time: number; panicString: string } {
  const dmesg = taken.filter((t) => t.facts.type === 'dmesg').sort((a, b) => Number(b.file.mtimeSec - a.file.mtimeSec));
  const panic = dmesg.find((t) => t.facts.reason === 'Panic') ?? dmesg[0];
  const devcd = taken.find((t) => t.facts.type === 'devcoredump');
  const consolePanic = taken.filter((t) => t.facts.type === 'console').map((t) => t.facts.panicString).find((s) => s !== '') ?? '';
  const time = panic ? Number(panic.file.mtimeSec) : devcd ? Number(devcd.file.mtimeSec) : 0;
  return { time, panicString: panic?.facts.panicString || consolePanic };
}

/**
 * Writes the files into a new DUMPDIR/pstore/<name> (or <name>-N when
 * taken), through a temporary directory renamed into place: a reader never
 * sees half an archive.
 */
function archive(top: string, name: string, files: readonly Taken[]): string {
  ensureDir(top, 0o700);
  let dir = path.join(top, name);
  for (let n = 1; fs.existsSync(dir); n++) {
    // An archive renamed into place by a save killed before indexing: finish that save.
    if (files.every((t) => sameFile(path.join(dir, t.file.name), t.sha))) return dir;
    dir = path.join(top, `${name}-${n}`);
  }
  const tmp = path.join(top, `.saving-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    ensureDir(tmp, 0o700);
    for (const t of files) {
      const file = path.join(tmp, t.file.name);
      const fd = fs.openSync(file, 'wx', 0o600);
      try {
        fs.writeFileSync(fd, t.data);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      const mtime = Number(t.file.mtimeSec) + t.file.mtimeNsec / 1e9;
      fs.utimesSync(file, mtime, mtime);
    }
    fsyncDir(tmp);
    fs.renameSync(tmp, dir);
    fsyncDir(top);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw ioError(`archiving pstore records to ${dir}`, e as NodeJS.ErrnoException);
  }
  return dir;
}

function sameFile(file: string, sha: string): boolean {
  try {
    return sha256(fs.readFileSync(file)) === sha;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw ioError('reading an archived pstore record', e as NodeJS.ErrnoException);
  }
}

/**
 * For `lkcd reindex`: indexes every archive under DUMPDIR/pstore again from
 * its files alone (their names, contents and mtimes). Returns how many
 * records were indexed.
 */
export function reindexPstore(index: DumpIndex, dumpdir: string): number {
  const top = path.join(dumpdir, PSTORE_ARCHIVE_DIR);
  if (!fs.existsSync(top)) return 0;
  const pidx = PstoreIndex.of(index);
  let count = 0;
  for (const name of fs.readdirSync(top).filter((d) => !d.startsWith('.')).sort()) {
    const dir = path.join(top, name);
    if (!fs.statSync(dir).isDirectory()) continue;
    const taken: Taken[] = fs.readdirSync(dir).filter((f) => !f.startsWith('.')).sort().map((f) => {
      const data = fs.readFileSync(path.join(dir, f));
      const st = fs.statSync(path.join(dir, f));
      const mtimeSec = BigInt(Math.floor(st.mtimeMs / 1000));
      const file: SysfsFile = { kind: 'file', name: f, mode: st.mode & 0o777, mtimeSec, mtimeNsec: 0, size: data.length, read: () => data };
      return { file, data, sha: sha256(data), facts: pstoreFacts(f, data) };
    });
    const crash = crashOf(taken);
    for (const t of taken) {
      const own = t.facts.type === 'dmesg' && t.facts.panicString !== '';
      const r = pidx.add({
        dir, file: t.file.name, type: t.facts.type, record_id: t.facts.recordId, time_sec: Number(t.file.mtimeSec),
        crash_time: own ? Number(t.file.mtimeSec) : crash.time, size: t.data.length, compressed: t.facts.compressed,
        reason: t.facts.reason, oops_count: t.facts.oopsCount, panic_string: own ? t.facts.panicString : crash.panicString,
        ecc_notice: t.facts.eccNotice, sha256: t.sha, saved_at: Math.floor(Date.now() / 1000),
      }, t.facts.lines);
      if (r.inserted) count++;
    }
  }
  return count;
}

/** `lkcd pstore list`: one row per archived record, with the dump of its crash. */
export function pstoreListText(rows: readonly PstoreListed[], dumpdir: string): string {
  const out = [' ID  ARCHIVED AS                                   TIME (UTC)           RECORD     DUMP  PANIC'];
  for (const r of rows) {
    const rel = path.relative(path.join(dumpdir, PSTORE_ARCHIVE_DIR), path.join(r.dir, r.file));
    const t = new Date(r.time_sec * 1000).toISOString().replace('T', ' ').slice(0, 19);
    const rec = r.reason ? `${r.reason}#${r.oops_count}` : r.type;
    out.push(`${String(r.id).padStart(3)}  ${rel.padEnd(44)}  ${t}  ${rec.padEnd(10)} ${(r.dump_n === null ? '-' : String(r.dump_n)).padStart(4)}  ${r.panic_string}${r.ecc_notice && !/No errors/.test(r.ecc_notice) ? `  [${r.ecc_notice}]` : ''}`);
  }
  return out.join('\n') + '\n';
}
