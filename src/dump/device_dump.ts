import crypto from 'node:crypto';
import { bytes, CorruptDumpError, defineStruct, DumpError, hex, u32, viewOf, wrapError } from '../codec/index.js';
import { PAGE_SIZE } from '../machine/index.js';
import type { BlockDevice } from './device.js';
import { DUMP_BUFFER_SIZE, DUMP_HEADER_OFFSET } from './lkcd/constants.js';
import { type DumpHeader } from './lkcd/dump_header.js';
import { lkcdExtent } from './formats/lkcd.js';

/** The dump found on a dump device: where it starts and ends, and its header. */
export interface DeviceDump {
  header: DumpHeader;
  /** Device offset of the dump header (DUMP_HEADER_OFFSET): byte 0 of the saved dump.N. */
  start: bigint;
  /** Device offset just past the dump: its extension area, or its END record. */
  end: bigint;
  /** dh_num_pages: the page records the header says the dump holds. */
  pages: number;
  /** The END record carries DUMP_DH_TRUNCATED. */
  truncated: boolean;
}

/**
 * Finds the LKCD dump on a device, reading it through the LKCD reader over
 * the device from DUMP_HEADER_OFFSET on: null when the device holds none
 * (dh_magic_number 0: never written, or cleared by a writeout that has
 * not finished), an error naming the device and field when something is
 * there but is not a dump that can be read. Whether its pages are intact
 * is checked on the copy `lkcd save` makes (the same bytes).
 */
export function findDeviceDump(dev: BlockDevice): DeviceDump | null {
  const start = DUMP_HEADER_OFFSET;
  if (dev.size < start + BigInt(DUMP_BUFFER_SIZE)) {
    throw new DumpError('TRUNCATED', `${dev.path}: ${dev.size} bytes is too small to hold an LKCD dump header at ${start}`, { file: dev.path });
  }
  const magic = viewOf(dev.read(start, 8)).getBigUint64(0, true);
  if (magic === 0n) return null;
  const src = dev.dumpSource(start);
  let ext: ReturnType<typeof lkcdExtent>;
  try {
    ext = lkcdExtent(src);
  } catch (e) {
    throw e instanceof DumpError && !e.message.includes(dev.path) ? wrapError(dev.path, e) : e;
  }
  if (!ext) {
    throw new CorruptDumpError(`${dev.path}: no LKCD dump (dh_magic_number ${hex(magic)} at offset ${start})`,
      { file: dev.path, struct: 'dump_header', field: 'dh_magic_number', offset: start });
  }
  if (ext.header.dh_page_size !== PAGE_SIZE) {
    throw new DumpError('UNSUPPORTED', `${dev.path}: dh_page_size ${ext.header.dh_page_size} is not ${PAGE_SIZE}`, { file: dev.path, struct: 'dump_header', field: 'dh_page_size' });
  }
  return { header: ext.header, start, end: start + ext.end, pages: ext.header.dh_num_pages, truncated: ext.truncated };
}

/** sha256 of the dump's bytes on the device, [start, end): the same as of the saved dump.N. */
export function deviceDumpSha256(dev: BlockDevice, d: DeviceDump, onProgress?: (done: bigint, total: bigint) => void): string {
  const h = crypto.createHash('sha256');
  const chunk = 4 << 20;
  for (let off = d.start; off < d.end; off += BigInt(chunk)) {
    const n = Number(d.end - off < BigInt(chunk) ? d.end - off : BigInt(chunk));
    h.update(dev.read(off, n));
    onProgress?.(off + BigInt(n) - d.start, d.end - d.start);
  }
  return h.digest('hex');
}

/**
 * The "saved" mark: a small record in the first page of the device (the
 * area LKCD leaves free before DUMP_HEADER_OFFSET), naming the dump it
 * marks by sha256 and the N it was saved as. The dump itself stays intact.
 * `lkcd save` writes it twice: LKCD_MARK_SAVING with the N it chose before
 * it writes anything to DUMPDIR (so a rerun after a kill finishes that
 * save, as that N, and never takes it for another crash's identical dump),
 * then LKCD_MARK_SAVED once the dump is indexed. A new writeout clears
 * the page, so a later crash is never taken for the dump saved before.
 */
export const LKCD_SAVED_MAGIC = Buffer.from('LKCDSAVD', 'latin1');

/** sm_state: the dump is saved as sm_n (0, so marks from before sm_state read as saved). */
export const LKCD_MARK_SAVED = 0;
/** sm_state: `lkcd save` is saving the dump as sm_n and has not finished. */
export const LKCD_MARK_SAVING = 1;

export const lkcd_saved_mark = defineStruct('lkcd_saved_mark', {
  sm_magic: bytes(8),
  sm_n: u32,
  sm_state: u32,
  sm_sha256: bytes(32),
});

/** What the device's mark says: the dump with this sha256 is saved, or being saved, as n. */
export interface DeviceMark { state: 'saved' | 'saving'; sha256: string; n: number }

/**
 * The device's mark, or null when it has none (never saved, or cleared by
 * a writeout); a mark whose state this program does not know is refused.
 */
export function readDeviceMark(dev: BlockDevice): DeviceMark | null {
  const m = lkcd_saved_mark.decode(viewOf(dev.read(0n, lkcd_saved_mark.size)));
  if (!Buffer.from(m.sm_magic).equals(LKCD_SAVED_MAGIC)) return null;
  if (m.sm_state !== LKCD_MARK_SAVED && m.sm_state !== LKCD_MARK_SAVING) {
    throw new CorruptDumpError(`${dev.path}: saved mark with unknown sm_state ${m.sm_state}`,
      { file: dev.path, struct: 'lkcd_saved_mark', field: 'sm_state', offset: lkcd_saved_mark.offsetOf.sm_state });
  }
  return { state: m.sm_state === LKCD_MARK_SAVED ? 'saved' : 'saving', sha256: Buffer.from(m.sm_sha256).toString('hex'), n: m.sm_n };
}

/** The mark of a dump that `lkcd save` finished saving, or null (no mark, or a save not finished). */
export function readSavedMark(dev: BlockDevice): { sha256: string; n: number } | null {
  const m = readDeviceMark(dev);
  return m && m.state === 'saved' ? { sha256: m.sha256, n: m.n } : null;
}

function writeMark(dev: BlockDevice, sha256: string, n: number, state: number): void {
  const b = Buffer.alloc(PAGE_SIZE);
  lkcd_saved_mark.encode({ sm_magic: LKCD_SAVED_MAGIC, sm_n: n, sm_state: state, sm_sha256: Buffer.from(sha256, 'hex') }, viewOf(b));
  dev.write(0n, b);
  dev.sync();
}

/** Marks the device dump saved as n (the last step of `lkcd save`). */
export function writeSavedMark(dev: BlockDevice, sha256: string, n: number): void {
  writeMark(dev, sha256, n, LKCD_MARK_SAVED);
}

/** Marks the device dump as being saved as n (before `lkcd save` writes anything to DUMPDIR). */
export function writeSavingMark(dev: BlockDevice, sha256: string, n: number): void {
  writeMark(dev, sha256, n, LKCD_MARK_SAVING);
}
