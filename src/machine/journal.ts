import fs from 'node:fs';
import path from 'node:path';
import { CorruptDumpError, DumpError, defineStruct, hex, ioError, u32, u64, viewOf } from '../codec/index.js';
import { PAGE_SIZE } from './constants.js';
import { fsyncDir, writeFileAtomic } from './files.js';
import { processAlive, sameProcess, selfIdentity, type ProcessIdentity } from './process_identity.js';

/**
 * The undo journal of one step of the machine (lib/machine/ram.journal).
 *
 * Every machine command is one atomic step: before a page of RAM or a
 * hardware file under lib/machine/ is changed on disk for the first time in
 * the step, its original bytes are appended here. The step commits by
 * syncing RAM, appending UR_COMMIT and removing the journal. A process
 * killed before that leaves the journal behind, and the next command that
 * takes the machine puts every original back (first record of a page or
 * file wins), so the machine is exactly as it was before the step.
 *
 * The journal is not fsynced record by record: it protects against the
 * process being killed at any instant (the kernel keeps what was written),
 * not against the host losing power.
 */
export const UNDO_JOURNAL_MAGIC = 0x4f444e5544434b4cn; // "LKCDUNDO"
export const UNDO_JOURNAL_VERSION = 1;

export const undo_journal_header = defineStruct('undo_journal_header', {
  uj_magic: u64,
  uj_version: u32,
  uj_header_size: u32,
  /** The process that runs the step (see ProcessIdentity). */
  uj_owner_pid: u32,
  _pad: u32,
  uj_owner_start: u64,
  /** The RAM image the step began on (st_dev, st_ino; 0 when there was none), for the record: a copied root keeps its journal valid. */
  uj_ram_dev: u64,
  uj_ram_ino: u64,
});

export const undo_record = defineStruct('undo_record', {
  ur_type: u32,
  /** Bytes of payload after this header. */
  ur_len: u32,
  /** UR_RAM_*: the physical address of the page; UR_FILE*: the length of the name in the payload. */
  ur_key: u64,
});

/** A page's original bytes (payload: PAGE_SIZE bytes). */
export const UR_RAM_PAGE = 1;
/** A page that was all zero (no payload). */
export const UR_RAM_ZERO = 2;
/** A hardware file's original content (payload: its name relative to lib/machine/, then the content). */
export const UR_FILE = 3;
/** A hardware file that did not exist (payload: its name). */
export const UR_FILE_ABSENT = 4;
/**
 * The RAM image is being replaced by a new one (a cold power-on): the
 * original was moved aside under the name in the payload (empty: there was
 * none). Page records after this one describe the new image and are moot.
 */
export const UR_RAM_REPLACED = 5;
/** The step is complete: recovery only removes what it left behind. */
export const UR_COMMIT = 6;

/** Largest hardware file the journal keeps (bounds what recovery reads). */
export const HARDWARE_FILE_MAX = 16 << 20;
const NAME_MAX = 255;
const PENDING_BYTES = 1 << 20;
const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);

/** The journal of the RAM image at `ramPath`. */
export function journalPathOf(ramPath: string): string {
  return `${ramPath}.journal`;
}

/** Where a cold power-on moves the original image until its step commits. */
export function replacedPathOf(ramPath: string): string {
  return `${ramPath}.replaced`;
}

function openAppend(file: string, create: boolean): number {
  const c = fs.constants;
  try {
    return fs.openSync(file, c.O_WRONLY | c.O_APPEND | (create ? c.O_CREAT | c.O_EXCL : 0), 0o600);
  } catch (e) {
    throw ioError('opening the machine\'s undo journal', e as NodeJS.ErrnoException);
  }
}

function writeAll(fd: number, buf: Uint8Array, file: string): void {
  let done = 0;
  try {
    while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done);
  } catch (e) {
    throw ioError(`writing ${file}`, e as NodeJS.ErrnoException);
  }
}

function recordBytes(type: number, key: bigint, ...payload: Uint8Array[]): Buffer {
  const len = payload.reduce((a, p) => a + p.length, 0);
  const out = Buffer.alloc(undo_record.size + len);
  undo_record.encode({ ur_type: type, ur_len: len, ur_key: key }, viewOf(out));
  let at = undo_record.size;
  for (const p of payload) { out.set(p, at); at += p.length; }
  return out;
}

/** The writer of a step's journal, held by the RAM image that runs the step. */
export class UndoJournal {
  private readonly pending: Buffer;
  private pendingLen = 0;
  private fd: number | null;

  private constructor(readonly file: string, fd: number, private readonly ino: bigint, pending?: Buffer) {
    this.fd = fd;
    this.pending = pending ?? UndoJournal.pendingBuffer();
  }

  /**
   * A buffer of records not yet written, for `begin` and `join`: a RAM image
   * that runs many steps passes the same one to each (a step's journal is
   * finished before the next begins), not 1 MiB of garbage per step.
   */
  static pendingBuffer(): Buffer {
    return Buffer.alloc(PENDING_BYTES);
  }

  /** Starts a step: creates the journal (which must not exist), naming this process and the RAM image. */
  static begin(file: string, ram: { dev: bigint; ino: bigint }, pending?: Buffer): UndoJournal {
    const fd = openAppend(file, true);
    const me = selfIdentity();
    const head = Buffer.from(undo_journal_header.toBytes({
      uj_magic: UNDO_JOURNAL_MAGIC, uj_version: UNDO_JOURNAL_VERSION, uj_header_size: undo_journal_header.size,
      uj_owner_pid: me.pid, _pad: 0, uj_owner_start: me.start, uj_ram_dev: ram.dev, uj_ram_ino: ram.ino,
    }));
    writeAll(fd, head, file);
    return new UndoJournal(file, fd, fs.fstatSync(fd, { bigint: true }).ino, pending);
  }

  /** Joins the step this process already runs (its journal exists). */
  static join(file: string, pending?: Buffer): UndoJournal {
    const fd = openAppend(file, false);
    return new UndoJournal(file, fd, fs.fstatSync(fd, { bigint: true }).ino, pending);
  }

  private put(rec: Uint8Array): void {
    if (this.pendingLen + rec.length > this.pending.length) this.flush();
    if (rec.length > this.pending.length) { writeAll(this.fd!, rec, this.file); return; }
    this.pending.set(rec, this.pendingLen);
    this.pendingLen += rec.length;
  }

  /** Keeps the original bytes of the page at `paddr` (buffered: flush before the page changes on disk). */
  ramPage(paddr: number, original: Uint8Array): void {
    if (original.length !== PAGE_SIZE) throw new DumpError('INTERNAL', `internal error (please report): journal page of ${original.length} bytes`);
    if (ZERO_PAGE.equals(original)) {
      if (this.pendingLen + undo_record.size > this.pending.length) this.flush();
      undo_record.encode({ ur_type: UR_RAM_ZERO, ur_len: 0, ur_key: BigInt(paddr) }, viewOf(this.pending), this.pendingLen);
      this.pendingLen += undo_record.size;
      return;
    }
    if (this.pendingLen + undo_record.size + PAGE_SIZE > this.pending.length) this.flush();
    undo_record.encode({ ur_type: UR_RAM_PAGE, ur_len: PAGE_SIZE, ur_key: BigInt(paddr) }, viewOf(this.pending), this.pendingLen);
    this.pending.set(original, this.pendingLen + undo_record.size);
    this.pendingLen += undo_record.size + PAGE_SIZE;
  }

  /** Records that the image is being replaced; `movedTo` is where the original went ('' when there was none). */
  ramReplaced(movedTo: string): void {
    this.put(recordBytes(UR_RAM_REPLACED, 0n, Buffer.from(movedTo, 'utf8')));
    this.flush();
  }

  /** Writes buffered records to the journal file: call before RAM changes on disk. */
  flush(): void {
    if (this.pendingLen === 0 || this.fd === null) return;
    writeAll(this.fd, this.pending.subarray(0, this.pendingLen), this.file);
    this.pendingLen = 0;
  }

  /** Marks the step complete (after RAM was synced). */
  markCommitted(): void {
    this.put(recordBytes(UR_COMMIT, 0n));
    this.flush();
  }

  /** Closes the writer and leaves the journal in place (the step is abandoned or handed on). */
  close(): void {
    if (this.fd === null) return;
    this.flush();
    fs.closeSync(this.fd);
    this.fd = null;
  }

  /** Closes and deletes the journal, if it is still this one. */
  remove(): void {
    this.close();
    try {
      if (fs.statSync(this.file, { bigint: true }).ino === this.ino) fs.unlinkSync(this.file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`removing ${this.file}`, e as NodeJS.ErrnoException);
    }
    fsyncDir(path.dirname(this.file));
  }
}

/**
 * Appends the original of a hardware file (null: it did not exist) to the
 * journal of the step this process runs, before the file is changed.
 */
export function journalHardwareFile(journalFile: string, name: string, original: Buffer | null): void {
  const n = Buffer.from(name, 'utf8');
  const rec = original === null ? recordBytes(UR_FILE_ABSENT, BigInt(n.length), n) : recordBytes(UR_FILE, BigInt(n.length), n, original);
  const fd = openAppend(journalFile, false);
  try {
    writeAll(fd, rec, journalFile);
  } finally {
    fs.closeSync(fd);
  }
}

/** The owner of a journal, or null when there is none. A torn header names nobody alive (pid 0). */
export function journalOwner(journalFile: string): ProcessIdentity | null {
  let fd: number;
  try {
    fd = fs.openSync(journalFile, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError('reading the machine\'s undo journal', e as NodeJS.ErrnoException);
  }
  try {
    const b = Buffer.alloc(undo_journal_header.size);
    const n = fs.readSync(fd, b, 0, b.length, 0);
    if (n < b.length) return { pid: 0, start: 0n };
    const h = undo_journal_header.decode(viewOf(b));
    if (h.uj_magic !== UNDO_JOURNAL_MAGIC) {
      throw new CorruptDumpError(`${journalFile}: not an undo journal (magic ${hex(h.uj_magic)})`, { file: journalFile, struct: 'undo_journal_header', field: 'uj_magic' });
    }
    return { pid: h.uj_owner_pid, start: h.uj_owner_start };
  } finally {
    fs.closeSync(fd);
  }
}

/** True when this process runs the step whose journal is `journalFile`. */
export function ownsJournal(journalFile: string): boolean {
  const owner = journalOwner(journalFile);
  return owner !== null && sameProcess(owner, selfIdentity());
}

/** What rolling back an abandoned step did. */
export interface RollbackReport {
  owner: ProcessIdentity;
  /** The step had committed: nothing was restored, only its leftovers removed. */
  committed: boolean;
  pages: number;
  files: string[];
  /** The RAM image was put back from before a cold power-on. */
  imageRestored: boolean;
}

/** Sequential reads of a journal through a window, so recovery does not pread per record. */
class JournalReader {
  private window = Buffer.alloc(0);
  private windowAt = 0;
  constructor(private readonly fd: number, readonly size: number) {}
  read(at: number, len: number): Buffer {
    if (at < this.windowAt || at + len > this.windowAt + this.window.length) {
      const n = Math.min(Math.max(len, 1 << 20), this.size - at);
      this.window = Buffer.alloc(n);
      let done = 0;
      while (done < n) {
        const r = fs.readSync(this.fd, this.window, done, n - done, at + done);
        if (r === 0) break;
        done += r;
      }
      this.window = this.window.subarray(0, done);
      this.windowAt = at;
    }
    return this.window.subarray(at - this.windowAt, at - this.windowAt + len);
  }
}

/**
 * Rolls back the step whose journal is `journalFile` on the RAM image at
 * `ramPath` (its owner must be gone): every page and hardware file back to
 * its first recorded original, a replaced image moved back, the journal
 * removed. A step that had committed is only cleaned up. Killed part-way,
 * it can simply be run again. The records are read up to the first torn
 * one (the append a kill cut short, whose change never reached the disk).
 */
export function rollBackJournal(journalFile: string, ramPath: string): RollbackReport {
  const machineDir = path.dirname(journalFile);
  const fd = fs.openSync(journalFile, 'r');
  let owner: ProcessIdentity = { pid: 0, start: 0n };
  const pages = new Map<number, number>(); // paddr -> payload offset, -1 for a zero page
  const files = new Map<string, { at: number; len: number } | null>();
  let replaced: string | null = null;
  let committed = false;
  try {
    const size = fs.fstatSync(fd).size;
    const r = new JournalReader(fd, size);
    if (size >= undo_journal_header.size) {
      const h = undo_journal_header.decode(viewOf(r.read(0, undo_journal_header.size)));
      const where = (field: string): { file: string; struct: string; field: string } => ({ file: journalFile, struct: 'undo_journal_header', field });
      if (h.uj_magic !== UNDO_JOURNAL_MAGIC) throw new CorruptDumpError(`${journalFile}: not an undo journal (magic ${hex(h.uj_magic)})`, where('uj_magic'));
      if (h.uj_version !== UNDO_JOURNAL_VERSION || h.uj_header_size !== undo_journal_header.size) {
        throw new DumpError('UNSUPPORTED', `${journalFile}: undo journal version ${h.uj_version} (header ${h.uj_header_size} bytes) is not ours`, where('uj_version'));
      }
      owner = { pid: h.uj_owner_pid, start: h.uj_owner_start };
      let at = undo_journal_header.size;
      while (at + undo_record.size <= size) {
        const rec = undo_record.decode(viewOf(r.read(at, undo_record.size)));
        const body = at + undo_record.size;
        if (body + rec.ur_len > size) break; // torn: its change never reached the disk
        const bad = (why: string): never => {
          throw new CorruptDumpError(`${journalFile}: record at offset ${at}: ${why}`, { file: journalFile, struct: 'undo_record', offset: at });
        };
        switch (rec.ur_type) {
          case UR_RAM_PAGE:
          case UR_RAM_ZERO: {
            if (rec.ur_len !== (rec.ur_type === UR_RAM_PAGE ? PAGE_SIZE : 0)) bad(`page record of ${rec.ur_len} bytes`);
            if (rec.ur_key % BigInt(PAGE_SIZE) !== 0n || rec.ur_key > BigInt(Number.MAX_SAFE_INTEGER)) bad(`page address ${hex(rec.ur_key)} is not a page`);
            const paddr = Number(rec.ur_key);
            // Pages written after the image was replaced belong to the new image, which goes.
            if (replaced === null && !pages.has(paddr)) pages.set(paddr, rec.ur_type === UR_RAM_PAGE ? body : -1);
            break;
          }
          case UR_FILE:
          case UR_FILE_ABSENT: {
            const nameLen = Number(rec.ur_key);
            if (rec.ur_key > BigInt(NAME_MAX) || nameLen === 0 || nameLen > rec.ur_len) bad(`file name of ${rec.ur_key} bytes`);
            if (rec.ur_type === UR_FILE_ABSENT && nameLen !== rec.ur_len) bad('an absent file with content');
            if (rec.ur_len - nameLen > HARDWARE_FILE_MAX) bad(`file content of ${rec.ur_len - nameLen} bytes`);
            const name = r.read(body, nameLen).toString('utf8');
            if (!validHardwareName(name)) bad(`file name '${name}' is not under lib/machine/`);
            if (!files.has(name)) files.set(name, rec.ur_type === UR_FILE ? { at: body + nameLen, len: rec.ur_len - nameLen } : null);
            break;
          }
          case UR_RAM_REPLACED: {
            if (rec.ur_len > NAME_MAX) bad(`image name of ${rec.ur_len} bytes`);
            if (replaced === null) replaced = r.read(body, rec.ur_len).toString('utf8');
            break;
          }
          case UR_COMMIT:
            committed = true;
            break;
          default:
            bad(`unknown record type ${rec.ur_type}`);
        }
        at = body + rec.ur_len;
      }
    }

    const moved = replacedPathOf(ramPath);
    if (committed) {
      fs.rmSync(moved, { force: true });
      return finish({ owner, committed, pages: 0, files: [], imageRestored: false });
    }
    // The image the page records describe: moved aside by a replacement, or still in place (records
    // come before the replacement, if any; a replacement that moved nothing aside had no old image).
    const movedExists = fs.existsSync(moved);
    const target = movedExists ? moved : replaced === '' || !fs.existsSync(ramPath) ? null : ramPath;
    let restored = 0;
    if (target !== null && pages.size > 0) {
      const out = fs.openSync(target, 'r+');
      try {
        const imageSize = fs.fstatSync(out).size;
        for (const [paddr, at] of pages) {
          if (paddr + PAGE_SIZE > imageSize) throw new CorruptDumpError(`${journalFile}: page ${hex(BigInt(paddr))} lies past the end of ${target}`, { file: journalFile });
          const data = at < 0 ? ZERO_PAGE : r.read(at, PAGE_SIZE);
          let done = 0;
          while (done < PAGE_SIZE) done += fs.writeSync(out, data, done, PAGE_SIZE - done, paddr + done);
          restored++;
        }
        fs.fsyncSync(out);
      } finally {
        fs.closeSync(out);
      }
    }
    let imageRestored = false;
    if (movedExists) {
      fs.renameSync(moved, ramPath);
      imageRestored = true;
    } else if (replaced === '') {
      // The step created the first image: it goes.
      fs.rmSync(ramPath, { force: true });
    }
    for (const [name, orig] of files) {
      const file = path.join(machineDir, name);
      if (orig === null) fs.rmSync(file, { force: true });
      else writeFileAtomic(file, r.read(orig.at, orig.len));
    }
    return finish({ owner, committed, pages: restored, files: [...files.keys()], imageRestored });
  } finally {
    fs.closeSync(fd);
  }

  function finish(report: RollbackReport): RollbackReport {
    fs.rmSync(journalFile, { force: true });
    fsyncDir(machineDir);
    return report;
  }
}

/** Names a hardware file may have: relative, under lib/machine/, not the RAM image, its journal or the lock. */
export function validHardwareName(name: string): boolean {
  if (name === '' || name.length > NAME_MAX || path.isAbsolute(name) || name.includes('\0')) return false;
  const parts = name.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return false;
  return !/^(ram|ram\.journal|ram\.replaced|lock)$/.test(parts[0]) && !parts[0].startsWith('.');
}

/**
 * Before a process touches the machine: if a step was left unfinished by a
 * process that is gone, roll it back. A step of this process is left alone
 * (it is the one running); a step of another live process is a busy machine.
 */
export function recoverAbandonedStep(ramPath: string): RollbackReport | null {
  const file = journalPathOf(ramPath);
  const owner = journalOwner(file);
  if (owner === null || sameProcess(owner, selfIdentity())) return null;
  if (processAlive(owner)) {
    throw new DumpError('BUSY', `${file}: pid ${owner.pid} is in the middle of a step of this machine; try again when it has finished`, { file });
  }
  return rollBackJournal(file, ramPath);
}
