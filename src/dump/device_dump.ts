import crypto from 'node:crypto';
import { CorruptDumpError, DumpError, hex, viewOf, wrapError } from '../codec/index.js';
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
 */
export const LKCD_SAVED_MAGIC = Buffer.from('LKCDSAVD', 'latin1');

export function readSavedMark(dev: BlockDevice): { sha256: string; n: number } | null {
  const b = dev.read(0n, 48);
  if (!b.subarray(0, 8).equals(LKCD_SAVED_MAGIC)) return null;
  return { n: b.readUInt32LE(8), sha256: b.subarray(16, 48).toString('hex') };
}

export function writeSavedMark(dev: BlockDevice, sha256: string, n: number): void {
  const b = Buffer.alloc(PAGE_SIZE);
  LKCD_SAVED_MAGIC.copy(b, 0);
  b.writeUInt32LE(n, 8);
  Buffer.from(sha256, 'hex').copy(b, 16);
  dev.write(0n, b);
  dev.sync();
}
