/**
 * Our extension area of an LKCD dump, after the END record, where readers
 * that stop at END never look (crash, libkdumpfile):
 *
 *   END record            dump_page { 0, 0, DUMP_DH_END [| DUMP_DH_TRUNCATED] }
 *   block ...             lkcd_ext_header { magic[8], count, crc32 of the body } + body
 *     "LKCDRNGS"          count x lkcd_range: listed frames with a reason (missing, or the dumper's own)
 *     "LKCDCSUM"          lkcd_csum_head + count x lkcd_csum_record: CRC32 of the headers,
 *                         of the END record, and of every page record (its header and data)
 *     "LKCDMISS"          (older dumps) count x lkcd_missing_range, no reasons
 *     "LKCDVMDD"          lkcd_vmcoredd_head + count x (lkcd_vmcoredd_entry, vmcoredd_header, data):
 *                         the device dumps kernel 2's drivers took (vmcoredd), trailing zeros left out
 *   "LKCDXEND"            lkcd_ext_header { count = blocks before it, crc32 of the area before it }
 *   'm' fill              the kernel's tail fill (dump_lcrash_update_end_marker)
 *
 * A block with a magic this reader does not know ends parsing with a note,
 * so later extensions can follow these. The area is also named by a locator
 * in the header buffer, at LKCD_EXT_LOCATOR_OFFSET (the first byte after the
 * page-aligned headers, which LKCD itself never writes), so that a dump
 * whose record headers are damaged can still be checked and walked.
 */
import zlib from 'node:zlib';
import {
  CorruptDumpError, NT_VMCOREDD, TruncatedError, VMCOREDD_MAX_NAME_BYTES, bytes, defineStruct, hex, u16, u32, u64, viewOf, vmcoredd_header, type Where,
} from '../../codec/index.js';
import { PAGE_SIZE } from '../../machine/index.js';
import { DUMP_RANGE_NAMES, dumpRangeName, type DumpRangeReasonName } from '../lkcd/constants.js';
import { dump_header } from '../lkcd/dump_header.js';
import { dump_header_asm } from '../lkcd/dump_header_asm.js';
import { placeOf, type DumpProblem, type DumpRange, type DumpSource } from './types.js';

/** Header of every block of the area: an 8-byte ASCII magic, an entry count, a CRC32 of the body. */
export const lkcd_ext_header = defineStruct('lkcd_ext_header', {
  magic: bytes(8),
  count: u32,
  crc32: u32,
});

/** The missing-ranges trailer of older dumps: the same header, then [start, end) pairs. */
export const LKCD_MISSING_TRAILER_MAGIC = 'LKCDMISS';
export const lkcd_missing_trailer = lkcd_ext_header;
export const lkcd_missing_range = defineStruct('lkcd_missing_range', {
  start_pfn: u64,
  end_pfn: u64,
});

/** Listed frames with the DUMP_RANGE_* reason of each. */
export const LKCD_RANGES_MAGIC = 'LKCDRNGS';
export const lkcd_range = defineStruct('lkcd_range', {
  start_pfn: u64,
  end_pfn: u64,
  reason: u32,
  _pad: u32,
});

/** Checksums of the dump: head, then one record per page record in stream order. */
export const LKCD_CSUM_MAGIC = 'LKCDCSUM';
export const lkcd_csum_head = defineStruct('lkcd_csum_head', {
  /** Offset of the first page record (dh_dump_buffer_size as written). */
  data_offset: u64,
  /** Bytes of dump_header + dump_header_asm covered by header_crc32. */
  header_len: u32,
  header_crc32: u32,
  /** CRC32 of the END record's 16 bytes. */
  end_crc32: u32,
  /** LKCD_CSUM_F_* bits. */
  flags: u32,
});
/** The locator in the header buffer was written too: a dump whose locator is gone has lost it. */
export const LKCD_CSUM_F_LOCATOR = 0x1;
/**
 * One page record: what its header must say, and a CRC32 over its 16-byte
 * header and its data. pfn is 32 bits (16 TiB of RAM); dp_size fits 16 bits
 * since it never exceeds a page.
 */
export const lkcd_csum_record = defineStruct('lkcd_csum_record', {
  pfn: u32,
  dp_size: u16,
  dp_flags: u16,
  crc32: u32,
});

/**
 * Device dumps: the vmcoredd notes kernel 2's drivers added (the bytes
 * /proc/vmcore would show between its headers and its notes), carried
 * after the memory dump. The head gives the body's length (the entries
 * have variable sizes); each entry is a lkcd_vmcoredd_entry, the note's
 * vmcoredd_header, and the first `stored` bytes of its data (the rest of
 * the note, up to note_size, is zero), padded to 8.
 */
export const LKCD_VMCOREDD_MAGIC = 'LKCDVMDD';
export const lkcd_vmcoredd_head = defineStruct('lkcd_vmcoredd_head', {
  /** Bytes of the block's body, this head included. */
  body_len: u64,
});
export const lkcd_vmcoredd_entry = defineStruct('lkcd_vmcoredd_entry', {
  /** Bytes of the whole note: the vmcoredd_header and the data, a whole number of pages. */
  note_size: u32,
  /** Bytes of data stored after the header. */
  stored: u32,
  /** CRC32 of the note's data (note_size - 64 bytes, the zeros included). */
  crc32: u32,
  _pad: u32,
});
/** Most device dumps a block may list (crash's NR_DEVICE_DUMPS). */
export const LKCD_VMCOREDD_MAX = 64;
/** Largest note a block may carry (bounds what a reader allocates). */
export const LKCD_VMCOREDD_MAX_NOTE = 256 << 20;

/** A device dump for the writer: its note's header (64 bytes) and its whole data. */
export interface LkcdDeviceDumpIn {
  header: Uint8Array;
  data: Uint8Array;
}

/** A device dump as the reader found it: where its stored bytes are, and what they must give. */
export interface LkcdDeviceDump {
  name: string;
  header: Uint8Array;
  noteSize: number;
  /** Dump offset of the stored data, and how many bytes are stored. */
  dataAt: bigint;
  stored: number;
  crc32: number;
}

const ALIGN8 = (n: number): number => Math.ceil(n / 8) * 8;

/** Bytes of data worth storing: up to the last non-zero byte. */
function storedLength(data: Uint8Array): number {
  let n = data.length;
  while (n > 0 && data[n - 1] === 0) n--;
  return n;
}

/** Bytes the device-dump block takes in the area (0 when there are no dumps). */
export function vmcoreddBlockBytes(dumps: readonly LkcdDeviceDumpIn[]): number {
  if (dumps.length === 0) return 0;
  return lkcd_ext_header.size + lkcd_vmcoredd_head.size
    + dumps.reduce((n, d) => n + lkcd_vmcoredd_entry.size + vmcoredd_header.size + ALIGN8(storedLength(d.data)), 0);
}

function encodeVmcoreddBody(dumps: readonly LkcdDeviceDumpIn[]): Uint8Array {
  const len = vmcoreddBlockBytes(dumps) - lkcd_ext_header.size;
  const body = new Uint8Array(len);
  const v = viewOf(body);
  lkcd_vmcoredd_head.encode({ body_len: BigInt(len) }, v, 0);
  let at = lkcd_vmcoredd_head.size;
  for (const d of dumps) {
    const stored = storedLength(d.data);
    lkcd_vmcoredd_entry.encode({ note_size: vmcoredd_header.size + d.data.length, stored, crc32: zlib.crc32(d.data) >>> 0, _pad: 0 }, v, at);
    body.set(d.header.subarray(0, vmcoredd_header.size), at + lkcd_vmcoredd_entry.size);
    body.set(d.data.subarray(0, stored), at + lkcd_vmcoredd_entry.size + vmcoredd_header.size);
    at += lkcd_vmcoredd_entry.size + vmcoredd_header.size + ALIGN8(stored);
  }
  return body;
}

/** Ends the area: count = blocks before it, crc32 = CRC32 of the area's bytes before it. */
export const LKCD_EXT_END_MAGIC = 'LKCDXEND';

/** The locator, at LKCD_EXT_LOCATOR_OFFSET of the header buffer. */
export const LKCD_EXT_LOCATOR_MAGIC = 'LKCDXLOC';
export const lkcd_ext_locator = defineStruct('lkcd_ext_locator', {
  magic: bytes(8),
  /** Offset of the area's first block (just after the END record), from byte 0 of the dump. */
  area_offset: u64,
  /** Bytes of the area, through the LKCDXEND block. */
  area_len: u64,
  area_crc32: u32,
  /** CRC32 of the locator's bytes before this field. */
  crc32: u32,
});

/** The header write size of LKCD (PAGE_ALIGN(sizeof dump_header + sizeof dump_header_asm)); the locator follows. */
export const LKCD_EXT_LOCATOR_OFFSET = Math.ceil((dump_header.size + dump_header_asm.size) / PAGE_SIZE) * PAGE_SIZE;

/** Largest page count an lkcd_csum_record can name. */
export const LKCD_CSUM_MAX_PFN = 0xffff_ffff;

const MAGIC_LEN = 8;
/** Checksum records read at once (1 MiB of them). */
const CSUM_PIECE_ENTRIES = 87381;
const TAIL_FILL = 0x6d;
const latin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
const magicBytes = (m: string): Uint8Array => Buffer.from(m, 'latin1');

// ---- the checksums, built by the writer and read back ----------------------------------------

/** The page records' checksums, in typed arrays grown by doubling or reserved up to a bound the caller checked (never sized from a value read alone). */
export class CsumRecords {
  count = 0;
  pfn = new Uint32Array(1024);
  size = new Uint16Array(1024);
  flags = new Uint16Array(1024);
  crc = new Uint32Array(1024);

  add(pfn: number, size: number, flags: number, crc: number): void {
    if (this.count === this.pfn.length) this.grow(this.pfn.length * 2);
    const i = this.count++;
    this.pfn[i] = pfn;
    this.size[i] = size;
    this.flags[i] = flags;
    this.crc[i] = crc;
  }

  /**
   * Room for `records` in all, at once: a writer that knows a bound (the
   * caller bounds it by what RAM can hold) saves the copies and garbage of
   * growing by doubling.
   */
  reserve(records: number): void {
    if (records > this.pfn.length) this.grow(records);
  }

  private grow(capacity: number): void {
    const grow = <T extends Uint32Array | Uint16Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(capacity);
      b.set(a.subarray(0, this.count));
      return b;
    };
    this.pfn = grow(this.pfn);
    this.size = grow(this.size);
    this.flags = grow(this.flags);
    this.crc = grow(this.crc);
  }
}

/** CRC32 of a page record: its 16-byte header, then its data. */
export function recordCrc32(header: Uint8Array, data: Uint8Array): number {
  return zlib.crc32(data, zlib.crc32(header)) >>> 0;
}

export interface CsumBlock {
  data_offset: bigint;
  header_len: number;
  header_crc32: number;
  end_crc32: number;
  flags: number;
  records: CsumRecords;
}

/** What the writer puts in the area. */
export interface ExtensionContent {
  ranges: DumpRange[];
  csum: CsumBlock;
  /** Device dumps of the recovery kernel, in the order its drivers added them. */
  devdumps?: readonly LkcdDeviceDumpIn[];
}

function block(magic: string, count: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(lkcd_ext_header.size + body.length);
  lkcd_ext_header.encode({ magic: magicBytes(magic), count, crc32: zlib.crc32(body) >>> 0 }, viewOf(out), 0);
  out.set(body, lkcd_ext_header.size);
  return out;
}

const REASON_CODE = new Map<DumpRangeReasonName, number>(DUMP_RANGE_NAMES.map((n, i) => [n, i]));

/**
 * Encodes the whole area: ranges (when any), checksums, the terminator, in
 * one buffer written in place (12 bytes a page record: no copies of it).
 */
export function encodeExtensionArea(c: ExtensionContent): Uint8Array {
  const H = lkcd_ext_header.size;
  const recs = c.csum.records;
  const rangesLen = c.ranges.length > 0 ? H + c.ranges.length * lkcd_range.size : 0;
  const csumLen = H + lkcd_csum_head.size + recs.count * lkcd_csum_record.size;
  // The device dumps (small beside the checksums) are encoded as a block of their own, then placed.
  const dd = c.devdumps && c.devdumps.length > 0 ? block(LKCD_VMCOREDD_MAGIC, c.devdumps.length, encodeVmcoreddBody(c.devdumps)) : null;
  const ddLen = dd?.length ?? 0;
  const out = new Uint8Array(rangesLen + csumLen + ddLen + H);
  const view = viewOf(out);
  /** The header of the block whose body is out[at + H, end), written after its body. */
  const header = (magic: string, count: number, at: number, end: number): void => {
    lkcd_ext_header.encode({ magic: magicBytes(magic), count, crc32: zlib.crc32(out.subarray(at + H, end)) >>> 0 }, view, at);
  };
  let blocks = 0;
  if (rangesLen > 0) {
    c.ranges.forEach((r, i) => {
      lkcd_range.encode({ start_pfn: r.start, end_pfn: r.end, reason: REASON_CODE.get(r.reason) ?? 0, _pad: 0 }, view, H + i * lkcd_range.size);
    });
    header(LKCD_RANGES_MAGIC, c.ranges.length, 0, rangesLen);
    blocks++;
  }
  const body = rangesLen + H;
  lkcd_csum_head.encode({
    data_offset: c.csum.data_offset, header_len: c.csum.header_len, header_crc32: c.csum.header_crc32,
    end_crc32: c.csum.end_crc32, flags: c.csum.flags,
  }, view, body);
  const o = lkcd_csum_record.offsetOf;
  for (let i = 0, at = body + lkcd_csum_head.size; i < recs.count; i++, at += lkcd_csum_record.size) {
    view.setUint32(at + o.pfn, recs.pfn[i], true);
    view.setUint16(at + o.dp_size, recs.size[i], true);
    view.setUint16(at + o.dp_flags, recs.flags[i], true);
    view.setUint32(at + o.crc32, recs.crc[i], true);
  }
  header(LKCD_CSUM_MAGIC, recs.count, rangesLen, rangesLen + csumLen);
  blocks++;
  if (dd) {
    out.set(dd, rangesLen + csumLen);
    blocks++;
  }
  const endAt = rangesLen + csumLen + ddLen;
  lkcd_ext_header.encode({ magic: magicBytes(LKCD_EXT_END_MAGIC), count: blocks, crc32: zlib.crc32(out.subarray(0, endAt)) >>> 0 }, view, endAt);
  return out;
}

/** Encodes the locator of an area of `area` bytes at dump offset `areaOffset`. */
export function encodeLocator(areaOffset: bigint, area: Uint8Array): Uint8Array {
  const out = new Uint8Array(lkcd_ext_locator.size);
  const view = viewOf(out);
  lkcd_ext_locator.encode({
    magic: magicBytes(LKCD_EXT_LOCATOR_MAGIC), area_offset: areaOffset, area_len: BigInt(area.length),
    area_crc32: zlib.crc32(area) >>> 0, crc32: 0,
  }, view, 0);
  view.setUint32(lkcd_ext_locator.offsetOf.crc32, zlib.crc32(out.subarray(0, lkcd_ext_locator.offsetOf.crc32)) >>> 0, true);
  return out;
}

/** Encodes the missing-ranges trailer of older dumps (kept for tests of the old layout). */
export function encodeLkcdMissingTrailer(ranges: ReadonlyArray<readonly [bigint, bigint]>): Uint8Array {
  const body = new Uint8Array(ranges.length * lkcd_missing_range.size);
  const view = viewOf(body);
  ranges.forEach(([start_pfn, end_pfn], i) => lkcd_missing_range.encode({ start_pfn, end_pfn }, view, i * lkcd_missing_range.size));
  return block(LKCD_MISSING_TRAILER_MAGIC, ranges.length, body);
}

// ---- reading ---------------------------------------------------------------------------------

/** The locator as found: null when its magic is absent; `problem` when it is there but damaged. */
export interface LocatorFound {
  areaOffset: bigint;
  areaLen: bigint;
  areaCrc32: number;
  problem: DumpProblem | null;
}

/**
 * Reads the locator in the header buffer (which ends at `dataOffset`).
 * Headers that end past LKCD_EXT_LOCATOR_OFFSET (an arch header for more
 * than 32 CPUs, which our writer never emits) leave no room for one there.
 */
export function readLocator(src: DumpSource, dataOffset: bigint, headersEnd = 0n): LocatorFound | null {
  const at = BigInt(LKCD_EXT_LOCATOR_OFFSET);
  if (dataOffset < at + BigInt(lkcd_ext_locator.size) || headersEnd > at) return null;
  const buf = new Uint8Array(lkcd_ext_locator.size);
  if (src.readAt(buf, at) < buf.length) return null;
  const loc = lkcd_ext_locator.decode(viewOf(buf), 0);
  if (latin1(loc.magic) !== LKCD_EXT_LOCATOR_MAGIC) return null;
  const crc = zlib.crc32(buf.subarray(0, lkcd_ext_locator.offsetOf.crc32)) >>> 0;
  const where = (field: keyof typeof lkcd_ext_locator.offsetOf): Where =>
    ({ file: src.path, struct: 'lkcd_ext_locator', field, offset: placeOf(src, at + BigInt(lkcd_ext_locator.offsetOf[field])) });
  const found: LocatorFound = { areaOffset: loc.area_offset, areaLen: loc.area_len, areaCrc32: loc.area_crc32, problem: null };
  if (crc !== loc.crc32) {
    found.problem = { pfn: null, offset: at, error: new CorruptDumpError(`the extension locator is damaged: crc32 ${hex(loc.crc32)} does not match its bytes (${hex(crc)})`, where('crc32')) };
  } else if (loc.area_offset < dataOffset || loc.area_len < BigInt(lkcd_ext_header.size) || loc.area_offset + loc.area_len > src.size) {
    found.problem = { pfn: null, offset: at, error: new TruncatedError(`the extension locator names bytes [${hex(loc.area_offset)}, ${hex(loc.area_offset + loc.area_len)}) outside the dump (${hex(src.size)} bytes)`, where('area_len')) };
  }
  return found;
}

/** What the area holds, as far as it could be read. */
export interface LkcdExtensions {
  /** Ranges with reasons (LKCDRNGS), or the old trailer's ranges as 'unspecified'; [] when neither. */
  ranges: DumpRange[];
  /** The checksums, when the area holds a sound LKCDCSUM block. */
  csum: CsumBlock | null;
  /** An LKCDCSUM block was there, sound or not. */
  csumSeen: boolean;
  /** Failed checks: a block whose CRC32 or count is wrong, a range that is empty, a broken terminator. */
  problems: DumpProblem[];
  notes: string[];
  /** Offset just past the last block read (the terminator, when there is one). */
  end: bigint;
  /** The LKCDXEND block was found and is sound. */
  terminated: boolean;
  /** The device dumps of a sound LKCDVMDD block. */
  devdumps: LkcdDeviceDump[];
}

/**
 * Parses the blocks from dump offset `at` up to `limit` (the end of the
 * area, or of the source). Every count is checked against the bytes left
 * before anything is read or allocated.
 */
export function parseExtensions(src: DumpSource, at: bigint, limit: bigint): LkcdExtensions {
  const ext: LkcdExtensions = { ranges: [], csum: null, csumSeen: false, problems: [], notes: [], end: at, terminated: false, devdumps: [] };
  const hdr = new Uint8Array(lkcd_ext_header.size);
  const areaCrc: number[] = [];
  let blocks = 0;
  let pos = at;
  const problem = (offset: bigint, error: CorruptDumpError | TruncatedError): void => { ext.problems.push({ pfn: null, offset, error }); };
  // Each block moves pos forward by at least its header, and pos never passes limit: bounded.
  while (pos < limit) {
    const avail = limit - pos;
    const got = src.readAt(hdr.subarray(0, Number(avail < BigInt(hdr.length) ? avail : BigInt(hdr.length))), pos);
    const magic = latin1(hdr.subarray(0, Math.min(got, MAGIC_LEN)));
    const struct = magic === LKCD_MISSING_TRAILER_MAGIC ? 'lkcd_missing_trailer' : 'lkcd_ext_header';
    const where = (field: 'magic' | 'count' | 'crc32'): Where =>
      ({ file: src.path, struct, field, offset: placeOf(src, pos + BigInt(lkcd_ext_header.offsetOf[field])) });
    const known = [LKCD_MISSING_TRAILER_MAGIC, LKCD_RANGES_MAGIC, LKCD_CSUM_MAGIC, LKCD_VMCOREDD_MAGIC, LKCD_EXT_END_MAGIC].includes(magic);
    if (!known) {
      const rest = hdr.subarray(0, got);
      if (!rest.every((b) => b === TAIL_FILL || b === 0)) {
        ext.notes.push(`an extension this reader does not know (${JSON.stringify(magic.replace(/[^\x20-\x7e]/g, '.'))}) at offset ${hex(placeOf(src, pos))}: not read`);
      }
      break;
    }
    if (got < lkcd_ext_header.size) {
      problem(pos, new CorruptDumpError(`${magic} block is cut short: ${got} of ${lkcd_ext_header.size} header bytes`, where('count')));
      break;
    }
    const h = lkcd_ext_header.decode(viewOf(hdr), 0);
    if (magic === LKCD_EXT_END_MAGIC) {
      if (areaCrc.includes(-1)) {
        pos += BigInt(lkcd_ext_header.size);
        break;
      }
      const crc = areaCrc.length ? areaCrc[areaCrc.length - 1] : 0;
      if (h.count !== blocks || h.crc32 !== crc) {
        problem(pos, new CorruptDumpError(`the extension terminator says ${h.count} blocks with crc32 ${hex(h.crc32)}; the area has ${blocks} with ${hex(crc)}`, where('crc32')));
      } else {
        ext.terminated = true;
      }
      pos += BigInt(lkcd_ext_header.size);
      break;
    }
    const entry = magic === LKCD_CSUM_MAGIC ? lkcd_csum_record.size : magic === LKCD_RANGES_MAGIC ? lkcd_range.size : lkcd_missing_range.size;
    const fixed = magic === LKCD_CSUM_MAGIC ? lkcd_csum_head.size : 0;
    const room = avail - BigInt(lkcd_ext_header.size);
    // The device-dump block says its own length (its entries vary in size).
    const need = magic === LKCD_VMCOREDD_MAGIC ? vmcoreddBodyLength(src, pos + BigInt(lkcd_ext_header.size), room) : BigInt(fixed) + BigInt(h.count) * BigInt(entry);
    if (magic === LKCD_CSUM_MAGIC) ext.csumSeen = true;
    if (need > room) {
      problem(pos, new CorruptDumpError(`${magic === LKCD_MISSING_TRAILER_MAGIC ? 'missing-ranges trailer' : `${magic} block`} claims ${h.count} entries (${need} bytes) but ${room} bytes follow it`, where('count')));
      break;
    }
    if (magic === LKCD_CSUM_MAGIC) {
      // 12 bytes a page: read in pieces into the records, never whole (nor copied).
      const bodyAt = pos + BigInt(lkcd_ext_header.size);
      const head = new Uint8Array(fixed);
      src.readAt(head, bodyAt);
      const prev = areaCrc.length ? areaCrc[areaCrc.length - 1] : 0;
      let crc = zlib.crc32(head) >>> 0;
      let run = prev < 0 ? -1 : zlib.crc32(head, zlib.crc32(hdr, prev)) >>> 0;
      const records = new CsumRecords();
      // h.count entries are there (need <= room above): room for them at once.
      records.reserve(h.count);
      const piece = new Uint8Array(Math.min(h.count, CSUM_PIECE_ENTRIES) * entry);
      const o = lkcd_csum_record.offsetOf;
      for (let i = 0; i < h.count;) {
        const n = Math.min(CSUM_PIECE_ENTRIES, h.count - i);
        const b = piece.subarray(0, n * entry);
        src.readAt(b, bodyAt + BigInt(fixed + i * entry));
        crc = zlib.crc32(b, crc) >>> 0;
        if (run >= 0) run = zlib.crc32(b, run) >>> 0;
        const v = viewOf(b);
        for (let k = 0, p = 0; k < n; k++, p += entry) {
          records.add(v.getUint32(p + o.pfn, true), v.getUint16(p + o.dp_size, true), v.getUint16(p + o.dp_flags, true), v.getUint32(p + o.crc32, true));
        }
        i += n;
      }
      if (crc !== h.crc32) {
        problem(pos, new CorruptDumpError(`${magic} block crc32 ${hex(h.crc32)} does not match its entries (${hex(crc)})`, where('crc32')));
        // Its entries are not used; the blocks after it may still be sound (each has its own CRC32).
        areaCrc.push(-1);
      } else {
        ext.csum = { ...lkcd_csum_head.decode(viewOf(head), 0), records };
        areaCrc.push(run);
      }
      pos = bodyAt + need;
      blocks++;
      continue;
    }
    const body = new Uint8Array(Number(need));
    src.readAt(body, pos + BigInt(lkcd_ext_header.size));
    const crc = zlib.crc32(body) >>> 0;
    const bodyAt = pos + BigInt(lkcd_ext_header.size);
    if (crc !== h.crc32) {
      problem(pos, new CorruptDumpError(`${magic === LKCD_MISSING_TRAILER_MAGIC ? 'missing-ranges trailer' : `${magic} block`} crc32 ${hex(h.crc32)} does not match its ${magic === LKCD_MISSING_TRAILER_MAGIC ? 'ranges' : 'entries'} (${hex(crc)})`, where('crc32')));
      // Its entries are not used; the blocks after it may still be sound (each has its own CRC32).
      pos = bodyAt + need;
      areaCrc.push(-1);
      blocks++;
      continue;
    }
    // Device dumps, or ranges (a few entries a dump).
    const view = viewOf(body);
    if (magic === LKCD_VMCOREDD_MAGIC) {
      const parsed = parseVmcoreddBody(src, body, bodyAt, h.count);
      if (parsed instanceof CorruptDumpError) {
        problem(pos, parsed);
        break;
      }
      ext.devdumps = parsed;
      const prev = areaCrc.length ? areaCrc[areaCrc.length - 1] : 0;
      areaCrc.push(prev < 0 ? -1 : zlib.crc32(body, zlib.crc32(hdr, prev)) >>> 0);
      blocks++;
      pos = bodyAt + need;
      continue;
    }
    const ranges: DumpRange[] = [];
    let bad = false;
    for (let i = 0; i < h.count; i++) {
      const r = magic === LKCD_RANGES_MAGIC
        ? lkcd_range.decode(view, i * entry)
        : { ...lkcd_missing_range.decode(view, i * entry), reason: 0 };
      if (r.start_pfn >= r.end_pfn) {
        const s = magic === LKCD_RANGES_MAGIC ? 'lkcd_range' : 'lkcd_missing_range';
        problem(bodyAt + BigInt(i * entry), new CorruptDumpError(`missing range ${i} [${hex(r.start_pfn)}, ${hex(r.end_pfn)}) is empty or reversed`, {
          file: src.path, struct: s, field: 'end_pfn', offset: placeOf(src, bodyAt + BigInt(i * entry + lkcd_missing_range.offsetOf.end_pfn)),
        }));
        bad = true;
        break;
      }
      ranges.push({ start: r.start_pfn, end: r.end_pfn, reason: dumpRangeName(r.reason) });
    }
    if (bad) break;
    // Reasons win over the old trailer when a dump carries both.
    if (magic === LKCD_RANGES_MAGIC || ext.ranges.length === 0) ext.ranges = ranges;
    // The area's running CRC32 over this block, its header then its body (no copy of the two together).
    const prev = areaCrc.length ? areaCrc[areaCrc.length - 1] : 0;
    areaCrc.push(prev < 0 ? -1 : zlib.crc32(body, zlib.crc32(hdr, prev)) >>> 0);
    blocks++;
    pos = bodyAt + need;
  }
  ext.end = pos;
  return ext;
}

/** The body length an LKCDVMDD block's head gives (0 when its head is cut short: the count check then fails). */
function vmcoreddBodyLength(src: DumpSource, at: bigint, room: bigint): bigint {
  if (room < BigInt(lkcd_vmcoredd_head.size)) return BigInt(lkcd_vmcoredd_head.size);
  const b = new Uint8Array(lkcd_vmcoredd_head.size);
  src.readAt(b, at);
  const len = lkcd_vmcoredd_head.decode(viewOf(b), 0).body_len;
  return len < BigInt(lkcd_vmcoredd_head.size) ? BigInt(lkcd_vmcoredd_head.size) : len;
}

/**
 * The entries of a sound LKCDVMDD body (its CRC32 already matched): each
 * checked against the body's length and the note rules (LINUX, NT_VMCOREDD,
 * n_descsz consistent with note_size). Returns the first problem instead.
 */
function parseVmcoreddBody(src: DumpSource, body: Uint8Array, bodyAt: bigint, count: number): LkcdDeviceDump[] | CorruptDumpError {
  const v = viewOf(body);
  const bad = (why: string, offset: number, struct = 'lkcd_vmcoredd_entry', field?: string): CorruptDumpError =>
    new CorruptDumpError(`device dump block: ${why}`, { file: src.path, struct, field, offset: placeOf(src, bodyAt + BigInt(offset)) });
  const len = Number(lkcd_vmcoredd_head.decode(v, 0).body_len);
  if (len !== body.length) return bad(`body_len ${len} but ${body.length} bytes were read`, 0, 'lkcd_vmcoredd_head', 'body_len');
  if (count > LKCD_VMCOREDD_MAX) return bad(`${count} dumps, more than ${LKCD_VMCOREDD_MAX}`, 0, 'lkcd_ext_header', 'count');
  const out: LkcdDeviceDump[] = [];
  let at = lkcd_vmcoredd_head.size;
  for (let i = 0; i < count; i++) {
    if (at + lkcd_vmcoredd_entry.size + vmcoredd_header.size > body.length) return bad(`entry ${i} runs past the block`, at);
    const e = lkcd_vmcoredd_entry.decode(v, at);
    const hAt = at + lkcd_vmcoredd_entry.size;
    const hdr = vmcoredd_header.decode(v, hAt);
    if (e.note_size < vmcoredd_header.size || e.note_size > LKCD_VMCOREDD_MAX_NOTE) return bad(`entry ${i}: note_size ${e.note_size}`, at, 'lkcd_vmcoredd_entry', 'note_size');
    if (e.stored > e.note_size - vmcoredd_header.size || hAt + vmcoredd_header.size + e.stored > body.length) return bad(`entry ${i}: ${e.stored} bytes stored`, at, 'lkcd_vmcoredd_entry', 'stored');
    if (hdr.n_type !== NT_VMCOREDD || hdr.n_namesz !== 8 || hdr.n_descsz !== e.note_size - vmcoredd_header.size + VMCOREDD_MAX_NAME_BYTES) {
      return bad(`entry ${i}: not a vmcoredd note of ${e.note_size} bytes (n_type ${hex(hdr.n_type)}, n_namesz ${hdr.n_namesz}, n_descsz ${hdr.n_descsz})`, hAt, 'vmcoredd_header', 'n_descsz');
    }
    out.push({
      name: hdr.dump_name, header: body.slice(hAt, hAt + vmcoredd_header.size), noteSize: e.note_size,
      dataAt: bodyAt + BigInt(hAt + vmcoredd_header.size), stored: e.stored, crc32: e.crc32,
    });
    at = hAt + vmcoredd_header.size + ALIGN8(e.stored);
  }
  return out;
}

/** A device dump's data (note_size - 64 bytes): the stored bytes read back, zeros after; CorruptDumpError when its CRC32 fails. */
export function readLkcdDeviceDump(src: DumpSource, d: LkcdDeviceDump): Uint8Array {
  const out = new Uint8Array(d.noteSize - vmcoredd_header.size);
  const got = src.readAt(out.subarray(0, d.stored), d.dataAt);
  const crc = zlib.crc32(out) >>> 0;
  if (got !== d.stored || crc !== d.crc32) {
    throw new CorruptDumpError(`device dump ${d.name}: its data does not match its CRC32 (${hex(crc)}, the block says ${hex(d.crc32)})`,
      { file: src.path, struct: 'lkcd_vmcoredd_entry', field: 'crc32', offset: placeOf(src, d.dataAt) });
  }
  return out;
}

/** CRC32 of `len` bytes of the source at `at`, read in 1 MiB pieces. */
export function crc32Of(src: DumpSource, at: bigint, len: bigint): number {
  const buf = new Uint8Array(1 << 20);
  let crc = 0;
  for (let done = 0n; done < len;) {
    const n = Number(len - done < BigInt(buf.length) ? len - done : BigInt(buf.length));
    const got = src.readAt(buf.subarray(0, n), at + done);
    crc = zlib.crc32(buf.subarray(0, got), crc) >>> 0;
    if (got < n) break;
    done += BigInt(n);
  }
  return crc;
}
