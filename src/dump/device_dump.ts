import crypto from 'node:crypto';
import { CorruptDumpError, DumpError, hex, viewOf } from '../codec/index.js';
import { PAGE_SIZE } from '../machine/index.js';
import type { BlockDevice } from './device.js';
import {
  DUMP_BUFFER_SIZE, DUMP_DH_COMPRESSED, DUMP_DH_END, DUMP_DH_RAW, DUMP_HEADER_OFFSET, DUMP_MAGIC_NUMBER, DUMP_VERSION_NUMBER,
} from './lkcd/constants.js';
import { dump_header, type DumpHeader } from './lkcd/dump_header.js';
import { dump_header_asm } from './lkcd/dump_header_asm.js';
import { dump_page } from './lkcd/dump_page.js';
import { LKCD_MISSING_TRAILER_MAGIC, lkcd_missing_trailer } from './formats/lkcd.js';

const TRAILER_MAGIC = Buffer.from(LKCD_MISSING_TRAILER_MAGIC, 'latin1');
const MISSING_TRAILER_HEADER = lkcd_missing_trailer.size;

/** The dump found on a dump device: where it starts and ends, and its header. */
export interface DeviceDump {
  header: DumpHeader;
  /** Device offset of the dump header (DUMP_HEADER_OFFSET): byte 0 of the saved dump.N. */
  start: bigint;
  /** Device offset just past the END record and its trailer, if any. */
  end: bigint;
  pages: number;
  truncated: boolean;
}

/**
 * Finds the LKCD dump on a device: null when the device holds none (no
 * magic: never written, or cleared), a CorruptDumpError naming the device
 * and field when something is there but is not a valid dump.
 */
export function findDeviceDump(dev: BlockDevice): DeviceDump | null {
  const start = DUMP_HEADER_OFFSET;
  if (dev.size < start + BigInt(DUMP_BUFFER_SIZE)) {
    throw new DumpError('TRUNCATED', `${dev.path}: ${dev.size} bytes is too small to hold an LKCD dump header at ${start}`, { file: dev.path });
  }
  const raw = dev.read(start, dump_header.size + dump_header_asm.size);
  const header = dump_header.decode(viewOf(raw), 0);
  const where = (field: string): { file: string; struct: string; field: string; offset: bigint } => ({ file: dev.path, struct: 'dump_header', field, offset: start });
  if (header.dh_magic_number === 0n) return null;
  if (header.dh_magic_number !== DUMP_MAGIC_NUMBER) throw new CorruptDumpError(`${dev.path}: no LKCD dump (dh_magic_number ${hex(header.dh_magic_number)} at offset ${start})`, where('dh_magic_number'));
  if ((header.dh_version & 0xf) !== DUMP_VERSION_NUMBER) throw new DumpError('UNSUPPORTED', `${dev.path}: unsupported LKCD dh_version ${hex(header.dh_version)}`, where('dh_version'));
  if (header.dh_header_size !== dump_header.size) throw new CorruptDumpError(`${dev.path}: dh_header_size ${header.dh_header_size} is not ${dump_header.size}`, where('dh_header_size'));
  if (header.dh_page_size !== PAGE_SIZE) throw new DumpError('UNSUPPORTED', `${dev.path}: dh_page_size ${header.dh_page_size} is not ${PAGE_SIZE}`, where('dh_page_size'));
  const buf = header.dh_dump_buffer_size;
  if (buf < BigInt(dump_header.size + dump_header_asm.size) || buf > 1n << 24n || buf % BigInt(PAGE_SIZE) !== 0n) {
    throw new CorruptDumpError(`${dev.path}: dh_dump_buffer_size ${buf} is not a plausible buffer size`, where('dh_dump_buffer_size'));
  }
  let off = start + buf;
  let pages = 0;
  for (;;) {
    if (off + BigInt(dump_page.size) > dev.size) {
      throw new DumpError('TRUNCATED', `${dev.path}: dump runs past the end of the device at offset ${off} (no END record)`, { file: dev.path, struct: 'dump_page', offset: off });
    }
    const dp = dump_page.decode(viewOf(dev.read(off, dump_page.size)));
    if (dp.dp_flags & DUMP_DH_END) {
      let end = off + BigInt(dump_page.size);
      if (end + BigInt(MISSING_TRAILER_HEADER) <= dev.size) {
        const t = dev.read(end, MISSING_TRAILER_HEADER);
        if (t.subarray(0, 8).equals(TRAILER_MAGIC)) end += BigInt(MISSING_TRAILER_HEADER) + 16n * BigInt(t.readUInt32LE(8));
      }
      if (end > dev.size) throw new DumpError('TRUNCATED', `${dev.path}: missing-ranges trailer runs past the end of the device`, { file: dev.path, offset: off });
      return { header, start, end, pages, truncated: (dp.dp_flags & ~DUMP_DH_END) !== 0 };
    }
    const bad = dp.dp_address % BigInt(PAGE_SIZE) !== 0n || (dp.dp_flags !== DUMP_DH_RAW && dp.dp_flags !== DUMP_DH_COMPRESSED)
      || dp.dp_size > PAGE_SIZE || (dp.dp_flags === DUMP_DH_RAW && dp.dp_size !== PAGE_SIZE);
    if (bad) throw new CorruptDumpError(`${dev.path}: invalid page record at offset ${off} (dp_address ${hex(dp.dp_address)}, dp_size ${dp.dp_size}, dp_flags ${hex(dp.dp_flags)})`, { file: dev.path, struct: 'dump_page', offset: off });
    if (dp.dp_address / BigInt(PAGE_SIZE) >= header.dh_memory_size) {
      throw new CorruptDumpError(`${dev.path}: page record at offset ${off} is for paddr ${hex(dp.dp_address)}, beyond the ${header.dh_memory_size} pages of memory (dh_memory_size)`, { file: dev.path, struct: 'dump_page', field: 'dp_address', offset: off });
    }
    const next = off + BigInt(dump_page.size + dp.dp_size);
    if (next > dev.size) throw new DumpError('TRUNCATED', `${dev.path}: page record at offset ${off} runs past the end of the device`, { file: dev.path, struct: 'dump_page', field: 'dp_size', offset: off });
    off = next;
    pages++;
  }
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
