/**
 * cudbg, the Chelsio Unified Debug format cxgb4 writes a hardware dump in
 * (drivers/net/ethernet/chelsio/cxgb4/cudbg_lib_common.h, cudbg_if.h,
 * cudbg_zlib.h, cudbg_lib.c, cxgb4_cudbg.c):
 *
 *   struct cudbg_hdr                 56 bytes: signature, hdr_len, versions, data_len, max_entities, chip, dump/compress type
 *   struct cudbg_entity_hdr[max]     52 bytes each, entity i's header at hdr_len + 52 * (i - 1)
 *   entity data                      from min_size on; each entity padded to 4 bytes (num_pad)
 *
 * With CUDBG_COMPRESSION_ZLIB each piece of an entity's data (at most
 * CUDBG_CHUNK_SIZE bytes) is a struct cudbg_compress_hdr then a zlib stream
 * (deflateInit2: level Z_DEFAULT_COMPRESSION, windowBits 12, memLevel 4).
 */
import zlib from 'node:zlib';
import { bitfields, bytes, defineStruct, i32, u16, u32, u64, u8, viewOf, type ValueOf } from '../../codec/index.js';

/** CUDBG_SIGNATURE: 67856866, "CUDB" in the driver's words. */
export const CUDBG_SIGNATURE = 67856866;
export const CUDBG_MAJOR_VERSION = 1;
export const CUDBG_MINOR_VERSION = 14;
export const CUDBG_DUMP_TYPE_MINI = 1;
export const CUDBG_COMPRESSION_NONE = 1;
export const CUDBG_COMPRESSION_ZLIB = 2;

/** enum cudbg_dbg_entity_type: the entities this driver collects, and the count (cudbg_if.h with CUDBG_QDESC). */
export const CUDBG_REG_DUMP = 1;
export const CUDBG_DEV_LOG = 2;
export const CUDBG_EDC0 = 18;
export const CUDBG_EDC1 = 19;
export const CUDBG_MAX_ENTITY = 71;

/** Error codes (cudbg_if.h). */
export const CUDBG_STATUS_NO_MEM = -19;
export const CUDBG_STATUS_ENTITY_NOT_FOUND = -24;
export const CUDBG_SYSTEM_ERROR = -29;

/** CDUMP_MAX_COMP_BUF_SIZE and CUDBG_CHUNK_SIZE (cudbg_lib_common.h): pieces of at most 63 KiB. */
export const CDUMP_MAX_COMP_BUF_SIZE = 64 * 1024 - 1;
export const CUDBG_CHUNK_SIZE = Math.floor(CDUMP_MAX_COMP_BUF_SIZE / 1024) * 1024;
/** cxgb4_cudbg.h: the dump buffer cap, and the scratch buffer compression needs. */
export const CUDBG_DUMP_BUFF_SIZE = 32 * 1024 * 1024;
export const CUDBG_COMPRESS_BUFF_SIZE = 4 * 1024 * 1024;
/** cudbg_zlib.h. */
export const CUDBG_ZLIB_COMPRESS_ID = 17;
export const CUDBG_ZLIB_WIN_BITS = 12;
export const CUDBG_ZLIB_MEM_LVL = 4;
/**
 * zlib_deflate_workspacesize(12, 4): the deflate state, a 2 x 4 KiB window,
 * 4 KiB of prev, 4 KiB of head and 4 KiB of pending overlay, rounded up.
 */
export const CUDBG_ZLIB_WORKSPACE = 32 * 1024;

export const cudbg_hdr = defineStruct('cudbg_hdr', {
  signature: u32,
  hdr_len: u32,
  major_ver: u16,
  minor_ver: u16,
  data_len: u32,
  hdr_flags: u32,
  max_entities: u16,
  chip_ver: u8,
  /** u8 dump_type:3, reserved1:1, compress_type:4. */
  dump_flags: bitfields(u8, [{ name: 'dump_type', bits: 3 }, { name: 'reserved1', bits: 1 }, { name: 'compress_type', bits: 4 }]),
  reserved: bytes(32),
});
export type CudbgHdr = ValueOf<typeof cudbg_hdr>;

export const cudbg_entity_hdr = defineStruct('cudbg_entity_hdr', {
  entity_type: u32,
  start_offset: u32,
  size: u32,
  hdr_flags: i32,
  sys_warn: u32,
  sys_err: u32,
  num_pad: u8,
  /** Bit 0: the entity has extended data. */
  flag: u8,
  reserved1: bytes(2),
  next_ext_offset: u32,
  reserved: bytes(20),
});
export type CudbgEntityHdr = ValueOf<typeof cudbg_entity_hdr>;

/** struct cudbg_compress_hdr: u32 then two u64 at their natural alignment (4 bytes of padding), u64 rsvd[32]. */
export const cudbg_compress_hdr = defineStruct('cudbg_compress_hdr', {
  compress_id: u32,
  _pad: u32,
  decompress_size: u64,
  compress_size: u64,
  rsvd: bytes(32 * 8),
});

/** CHELSIO_CHIP_CODE(CHELSIO_T6, rev): what adap->params.chip holds. */
export function chelsioChipCode(version: number, revision: number): number {
  return ((version << 4) | revision) & 0xff;
}

/** The dump buffer's fixed part: the header and every entity header (min_size in cxgb4_cudbg_collect). */
export const CUDBG_MIN_SIZE = cudbg_hdr.size + cudbg_entity_hdr.size * CUDBG_MAX_ENTITY;

/** An entity's collector: reads the hardware and returns its data in pieces, or a negative cudbg status. */
export type CudbgCollect = () => { pieces: Uint8Array[] } | { error: number };

/** Writing side of one dump (cudbg_buffer + cudbg_init). */
export class CudbgWriter {
  offset = CUDBG_MIN_SIZE;

  constructor(readonly buf: Uint8Array, readonly compress: boolean) {}

  /** cudbg_compress_buff(): a compress header, then the piece deflated as the driver deflates it. */
  private putCompressed(piece: Uint8Array): boolean {
    const z = zlib.deflateSync(piece, { level: zlib.constants.Z_DEFAULT_COMPRESSION, windowBits: CUDBG_ZLIB_WIN_BITS, memLevel: CUDBG_ZLIB_MEM_LVL, strategy: zlib.constants.Z_DEFAULT_STRATEGY });
    if (this.offset + cudbg_compress_hdr.size + z.length > this.buf.length) return false;
    cudbg_compress_hdr.encode({ compress_id: CUDBG_ZLIB_COMPRESS_ID, _pad: 0, decompress_size: BigInt(piece.length), compress_size: BigInt(z.length), rsvd: new Uint8Array(256) },
      viewOf(this.buf), this.offset);
    this.buf.set(z, this.offset + cudbg_compress_hdr.size);
    this.offset += cudbg_compress_hdr.size + z.length;
    return true;
  }

  /** cudbg_write_and_release_buff(): a piece goes in as it is, or compressed in CUDBG_CHUNK_SIZE chunks. */
  private put(piece: Uint8Array): boolean {
    // cudbg_get_buff() checks the piece's own size against what is left, compressed or not.
    if (this.offset + piece.length > this.buf.length) return false;
    if (!this.compress) {
      this.buf.set(piece, this.offset);
      this.offset += piece.length;
      return true;
    }
    for (let at = 0; at < piece.length; at += CUDBG_CHUNK_SIZE) {
      if (!this.putCompressed(piece.subarray(at, Math.min(piece.length, at + CUDBG_CHUNK_SIZE)))) return false;
    }
    return true;
  }

  /** cxgb4_cudbg_collect_entity() for one entity: its header, its data, its padding. */
  entity(type: number, collect: CudbgCollect): number {
    const start = this.offset;
    const r = collect();
    let rc = 'error' in r ? r.error : 0;
    if (rc === 0 && !('error' in r)) {
      for (const p of r.pieces) {
        if (!this.put(p)) { rc = CUDBG_STATUS_NO_MEM; break; }
      }
    }
    let size = 0;
    let numPad = 0;
    if (rc !== 0) {
      this.offset = start;
    } else {
      // cudbg_align_debug_buffer(): pad the entity to 4 bytes.
      const remain = (this.offset - start) % 4;
      if (remain) { numPad = 4 - remain; this.buf.fill(0, this.offset, this.offset + numPad); this.offset += numPad; }
      size = this.offset - start;
    }
    cudbg_entity_hdr.encode({
      ...cudbg_entity_hdr.zero(), entity_type: type, start_offset: start, size, hdr_flags: rc, num_pad: numPad,
    }, viewOf(this.buf), cudbg_hdr.size + cudbg_entity_hdr.size * (type - 1));
    return size;
  }

  /** The global header, written last with data_len (cxgb4_cudbg_collect). */
  finish(chip: number): void {
    cudbg_hdr.encode({
      signature: CUDBG_SIGNATURE, hdr_len: cudbg_hdr.size, major_ver: CUDBG_MAJOR_VERSION, minor_ver: CUDBG_MINOR_VERSION,
      data_len: this.offset, hdr_flags: 0, max_entities: CUDBG_MAX_ENTITY, chip_ver: chip,
      dump_flags: CUDBG_DUMP_TYPE_MINI | ((this.compress ? CUDBG_COMPRESSION_ZLIB : CUDBG_COMPRESSION_NONE) << 4),
      reserved: new Uint8Array(32),
    }, viewOf(this.buf), 0);
  }
}
