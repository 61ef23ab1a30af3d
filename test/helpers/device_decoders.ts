/**
 * Decoders written in the tests from the formats' facts, independent of
 * the code under test: the device image `machine device --dump` writes
 * (README, "Device dumps"), the cudbg dump cxgb4 writes (cudbg_lib_common.h,
 * cudbg_zlib.h: header, entity headers at hdr_len + 52 * (type - 1),
 * compressed pieces of a 280-byte header and a zlib stream), the section
 * dumps of the stand-in drivers, and the notes of an ELF core file.
 */
import zlib from 'node:zlib';

export interface ImageRegion { name: string; type: number; busAddr: bigint; bytes: Buffer }

const cstr = (b: Buffer): string => b.toString('latin1').replace(/\0.*$/s, '');

/** A device image: "SIMPCIDV", version 1, a 64-byte header; 48-byte regions from offset 64. */
export function decodeDeviceImage(buf: Buffer): { model: string; flags: number; vendor: number; device: number; regions: Map<string, ImageRegion> } {
  if (buf.subarray(0, 8).toString('latin1') !== 'SIMPCIDV') throw new Error('not a device image');
  const nr = buf.readUInt32LE(24);
  const regions = new Map<string, ImageRegion>();
  for (let i = 0; i < nr; i++) {
    const at = 64 + i * 48;
    const name = cstr(buf.subarray(at, at + 16));
    const off = Number(buf.readBigUInt64LE(at + 16));
    const size = Number(buf.readBigUInt64LE(at + 24));
    regions.set(name, { name, type: buf.readUInt32LE(at + 32), busAddr: buf.readBigUInt64LE(at + 40), bytes: buf.subarray(off, off + size) });
  }
  return { model: cstr(buf.subarray(40, 64)), flags: buf.readUInt32LE(28), vendor: buf.readUInt16LE(20), device: buf.readUInt16LE(22), regions };
}

export interface CudbgEntity { type: number; start: number; size: number; flags: number; numPad: number; data: Buffer; pieces: number }

/** A cudbg dump: header fields, and every entity with a header whose type is set, its data decompressed. */
export function decodeCudbg(buf: Buffer): {
  signature: number; hdrLen: number; major: number; minor: number; dataLen: number; maxEntities: number; chip: number;
  dumpType: number; compressType: number; entities: Map<number, CudbgEntity>;
} {
  const hdrLen = buf.readUInt32LE(4);
  const maxEntities = buf.readUInt16LE(20);
  const typeByte = buf.readUInt8(23);
  const compressType = typeByte >> 4;
  const entities = new Map<number, CudbgEntity>();
  for (let i = 0; i < maxEntities; i++) {
    const at = hdrLen + 52 * i;
    const type = buf.readUInt32LE(at);
    if (type === 0) continue;
    const start = buf.readUInt32LE(at + 4);
    const size = buf.readUInt32LE(at + 8);
    const flags = buf.readInt32LE(at + 12);
    const numPad = buf.readUInt8(at + 24);
    const raw = buf.subarray(start, start + size - numPad);
    let data: Buffer;
    let pieces = 0;
    if (compressType === 2) {
      const parts: Buffer[] = [];
      for (let p = 0; p < raw.length;) {
        // struct cudbg_compress_hdr: u32 compress_id, (pad), u64 decompress_size @8, u64 compress_size @16, u64 rsvd[32].
        if (raw.readUInt32LE(p) !== 17) throw new Error(`entity ${type}: compress_id ${raw.readUInt32LE(p)} at ${p}`);
        const dsize = Number(raw.readBigUInt64LE(p + 8));
        const csize = Number(raw.readBigUInt64LE(p + 16));
        const out = zlib.inflateSync(raw.subarray(p + 280, p + 280 + csize));
        if (out.length !== dsize) throw new Error(`entity ${type}: piece inflates to ${out.length}, header says ${dsize}`);
        parts.push(out);
        p += 280 + csize;
        pieces++;
      }
      data = Buffer.concat(parts);
    } else {
      data = Buffer.from(raw);
    }
    entities.set(type, { type, start, size, flags, numPad, data, pieces });
  }
  return {
    signature: buf.readUInt32LE(0), hdrLen, major: buf.readUInt16LE(8), minor: buf.readUInt16LE(10), dataLen: buf.readUInt32LE(12),
    maxEntities, chip: buf.readUInt8(22), dumpType: typeByte & 7, compressType, entities,
  };
}

/** A section dump of the stand-in drivers: "SIMDDUMP", 32-byte header, 32-byte sections (name[16], u32 offset, u32 size). */
export function decodeSimDump(buf: Buffer): Map<string, Buffer> {
  if (buf.subarray(0, 8).toString('latin1') !== 'SIMDDUMP') throw new Error('not a section dump');
  const nr = buf.readUInt32LE(16);
  const out = new Map<string, Buffer>();
  for (let i = 0; i < nr; i++) {
    const at = 32 + i * 32;
    const off = buf.readUInt32LE(at + 16);
    out.set(cstr(buf.subarray(at, at + 16)), buf.subarray(off, off + buf.readUInt32LE(at + 20)));
  }
  return out;
}

export interface CoreNote { name: string; namesz: number; type: number; offset: number; descOffset: number; desc: Buffer }

/** The notes of every PT_NOTE of an ELF64 core, in file order, and the PT_NOTE headers. */
export function elfCoreNotes(buf: Buffer): { notes: CoreNote[]; ptNotes: Array<{ offset: number; filesz: number; index: number }> } {
  if (buf.readUInt32BE(0) !== 0x7f454c46) throw new Error('not ELF');
  const phoff = Number(buf.readBigUInt64LE(32));
  const phnum = buf.readUInt16LE(56);
  const notes: CoreNote[] = [];
  const ptNotes: Array<{ offset: number; filesz: number; index: number }> = [];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * 56;
    if (buf.readUInt32LE(ph) !== 4) continue;
    const offset = Number(buf.readBigUInt64LE(ph + 8));
    const filesz = Number(buf.readBigUInt64LE(ph + 32));
    ptNotes.push({ offset, filesz, index: i });
    const pad4 = (n: number): number => Math.ceil(n / 4) * 4;
    for (let at = offset; at + 12 <= offset + filesz;) {
      const namesz = buf.readUInt32LE(at);
      const descsz = buf.readUInt32LE(at + 4);
      const type = buf.readUInt32LE(at + 8);
      if (namesz === 0) break;
      const descOffset = at + 12 + pad4(namesz);
      notes.push({ name: cstr(buf.subarray(at + 12, at + 12 + namesz)), namesz, type, offset: at, descOffset, desc: buf.subarray(descOffset, descOffset + descsz) });
      at = descOffset + pad4(descsz);
    }
  }
  return { notes, ptNotes };
}

/** NT_VMCOREDD notes: dump_name (44 bytes), then the dump. */
export function vmcoreddOf(notes: readonly CoreNote[]): Array<{ name: string; data: Buffer; note: CoreNote }> {
  return notes.filter((n) => n.name === 'LINUX' && n.type === 0x700).map((n) => ({ name: cstr(n.desc.subarray(0, 44)), data: n.desc.subarray(44), note: n }));
}

/**
 * `crash -d 1 --osrelease` output: the device dump notes it lists, name and
 * size, in order. An ELF vmcore's note dump says "n_type: 700 (NT_VMCOREDD)",
 * a kdump-compressed file's "notes[i]: ADDR (NT_VMCOREDD)"; both follow with
 * name and size lines.
 */
export function crashDeviceDumps(out: string): Array<{ name: string; size: number }> {
  const found: Array<{ name: string; size: number }> = [];
  const re = /\(NT_VMCOREDD\)\s+name: "([^"]*)"\s+size: (\d+)/g;
  for (let m = re.exec(out); m; m = re.exec(out)) found.push({ name: m[1], size: Number(m[2]) });
  return found;
}
