/**
 * `lkcd import FILE [--map System.map] [--kerntypes FILE]`: brings a dump
 * we did not write into DUMPDIR as the next N (add_dump.ts: the crash-safe
 * path of lkcd save), after its format is recognised by the format table:
 * LKCD from any writer, makedumpfile's kdump-compressed files, ELF vmcores.
 * The same file (by sha256) is never imported twice. With a System.map the
 * crashed kernel's log, tasks and mem_map are read through it; without
 * one, through the VMCOREINFO note an ELF or kdump-compressed file carries.
 */
import fs from 'node:fs';
import { DumpError, UsageError } from '../src/codec/index.js';
import { readRegularFile, refuseSpecialFile, resolvePath, type MachineRoot } from '../src/machine/index.js';
import { openDump, readSystemMap } from '../src/dump/index.js';
import { addDump, type AddReport } from './add_dump.js';
import { sysconfigFor } from './query.js';

/** A System.map or Kerntypes larger than this is not one. */
const SIDE_FILE_MAX_BYTES = 64 << 20;

export interface ImportOptions {
  map?: string;
  kerntypes?: string;
}

/** An existing regular file given on the command line (`what`: '' for FILE, or its option), resolved; one line when it is not. */
function inputFile(file: string, what: string): string {
  const named = `${what ? `${what} ` : ''}${file}`;
  const resolved = resolvePath(file, named);
  refuseSpecialFile(resolved, named);
  const st = fs.statSync(resolved, { throwIfNoEntry: false });
  if (!st) throw new DumpError('NOINPUT', `${named}: no such file`, { file });
  if (!st.isFile()) throw new DumpError('IO', `${named} is a directory, not a regular file`, { file });
  return resolved;
}

/** Checks --kerntypes: ours (JSON, format lkcd-softboot-kerntypes) or LKCD's own (an ELF object with debug info). */
function checkKerntypes(file: string): void {
  const bytes = readRegularFile(file, SIDE_FILE_MAX_BYTES, 'Kerntypes');
  if (bytes.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return;
  let format: unknown;
  try {
    format = (JSON.parse(bytes.toString('utf8')) as { format?: unknown }).format;
  } catch {
    format = undefined;
  }
  if (format !== 'lkcd-softboot-kerntypes') {
    throw new DumpError('CORRUPT', `--kerntypes ${file}: neither a Kerntypes JSON file (format lkcd-softboot-kerntypes) nor an ELF object`, { file });
  }
}

export function lkcdImport(root: MachineRoot, file: string, opts: ImportOptions = {}): AddReport {
  const conf = sysconfigFor(root);
  const src = inputFile(file, '');
  const map = opts.map !== undefined ? inputFile(opts.map, '--map') : null;
  if (map) {
    try {
      readSystemMap(readRegularFile(map, SIDE_FILE_MAX_BYTES, 'System.map').toString('utf8'));
    } catch (e) {
      if (e instanceof DumpError && e.code === 'CORRUPT') throw new DumpError('CORRUPT', `--map ${opts.map}: ${e.message}`, { ...e.where, file: map }, { cause: e });
      throw e;
    }
  }
  const kerntypes = opts.kerntypes !== undefined ? inputFile(opts.kerntypes, '--kerntypes') : null;
  if (kerntypes) checkKerntypes(kerntypes);
  // The format table says what it is before anything is copied: an unknown format is one line.
  openDump(src).close();
  const r = addDump(conf.DUMPDIR, { design: 'import', file: src, copy: true, map, kerntypes, source: src, who: 'lkcd import' });
  if (r.already) {
    throw new UsageError(`${file} is already dump ${r.n} in ${conf.DUMPDIR} (same sha256, ${r.record.design}); not imported again`, { file });
  }
  return r;
}
