/**
 * Where a dump in DUMPDIR/N came from, kept beside it as origin.N so that
 * `lkcd reindex` rebuilds the same row from the directory alone: which
 * design produced it, and where its file is. A directory without origin.N
 * is what `lkcd save` wrote: design lkcd-softboot, file dump.N.
 *
 *   design=kdump
 *   file=../../../var/crash/127.0.0.1-2024-05-01-10:11:12/vmcore
 *   source=
 *
 * `file` is relative to DUMPDIR/N (a kdump vmcore stays where kdumpctl
 * save wrote it and is pointed at, not copied); `source` is the path an
 * imported dump was copied from.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CorruptDumpError, ioError } from '../src/codec/index.js';
import { readRegularFile } from '../src/machine/index.js';
import { DUMP_DESIGNS, type DumpDesign } from '../src/store/index.js';

export interface DumpOrigin {
  design: DumpDesign;
  /** The dump file, relative to DUMPDIR/N. */
  file: string;
  /** Where an imported dump was copied from ('' otherwise). */
  source: string;
}

/** origin.N is a few short lines; anything longer is not one. */
const ORIGIN_MAX_BYTES = 64 << 10;

export function originFileOf(dir: string, n: number): string {
  return path.join(dir, `origin.${n}`);
}

/** The origin of what `lkcd save` writes (no origin.N). */
export function savedOrigin(n: number): DumpOrigin {
  return { design: 'lkcd-softboot', file: `dump.${n}`, source: '' };
}

/** Reads DUMPDIR/N/origin.N; a directory without one holds a dump lkcd save wrote. */
export function readOrigin(dir: string, n: number): DumpOrigin {
  const file = originFileOf(dir, n);
  if (!fs.existsSync(file)) return savedOrigin(n);
  const text = readRegularFile(file, ORIGIN_MAX_BYTES, 'dump origin').toString('utf8');
  const kv = new Map<string, string>();
  text.split('\n').forEach((line, i) => {
    if (line === '') return;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new CorruptDumpError(`${file}:${i + 1}: '${line.slice(0, 60)}' is not KEY=VALUE`, { file, field: 'line' });
    kv.set(line.slice(0, eq), line.slice(eq + 1));
  });
  const design = kv.get('design');
  if (!design || !(DUMP_DESIGNS as readonly string[]).includes(design)) {
    throw new CorruptDumpError(`${file}: design '${design ?? ''}' is not one of ${DUMP_DESIGNS.join(', ')}`, { file, field: 'design' });
  }
  const dumpFile = kv.get('file');
  if (!dumpFile || dumpFile.includes('\0')) throw new CorruptDumpError(`${file}: no dump file named (file=)`, { file, field: 'file' });
  return { design: design as DumpDesign, file: dumpFile, source: kv.get('source') ?? '' };
}

/** Writes origin.N into `dir` (0600, fsynced): the caller renames the directory into place after. */
export function writeOrigin(dir: string, n: number, origin: DumpOrigin): void {
  for (const [k, v] of Object.entries(origin)) {
    if (v.includes('\n') || v.includes('\0')) throw new CorruptDumpError(`dump origin ${k} '${v.slice(0, 60)}' holds a newline or NUL`, { field: k });
  }
  const file = originFileOf(dir, n);
  try {
    const fd = fs.openSync(file, 'w', 0o600);
    try {
      fs.writeSync(fd, `design=${origin.design}\nfile=${origin.file}\nsource=${origin.source}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    throw ioError(`writing ${file}`, e as NodeJS.ErrnoException);
  }
}

/** The dump file of DUMPDIR/N (`dir`), as its origin names it. */
export function dumpFileOf(dir: string, origin: DumpOrigin): string {
  return path.resolve(dir, origin.file);
}
