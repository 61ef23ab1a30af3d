/**
 * An independent reader of a ramoops region in a RAM image file, written
 * in the test from the facts of fs/pstore/ram.c and ram_core.c (Linux 6.1)
 * and of this project's devcoredump zone, sharing no code with src/:
 *
 * - ramoops_probe(): record, console, ftrace and pmsg sizes are rounded
 *   down to powers of two; the dmesg zones take mem_size - console - ftrace
 *   - pmsg, split into (that / record_size) equal zones; then one console
 *   zone, the ftrace zone (one CPU), the pmsg zone; the devcoredump zone
 *   (ours) starts at mem_address + mem_size.
 * - struct persistent_ram_buffer { u32 sig; u32 start; u32 size; u8 data[]; },
 *   sig = 0x43474244 ("DBGC") XOR the zone value (0 for dmesg, console,
 *   pmsg; 0x44435644 "DVCD" for devcoredump). With ECC, the data area loses
 *   (ceil((n - ecc) / (128 + ecc)) + 1) * ecc bytes to parity.
 * - A zone's contents are data[start, size) then data[0, start).
 * - A dmesg (and devcoredump) record starts "====<sec>.<usec>-<C|D>\n"; C
 *   is raw deflate.
 */
import fs from 'node:fs';
import zlib from 'node:zlib';

export interface RamoopsParamsForTest {
  mem_address: number;
  mem_size: number;
  record_size: number;
  console_size: number;
  ftrace_size?: number;
  pmsg_size?: number;
  ecc?: number;
  devcoredump_size?: number;
}

export interface DecodedZone {
  kind: 'dmesg' | 'console' | 'ftrace' | 'pmsg' | 'devcoredump';
  index: number;
  paddr: number;
  size: number;
  /** Data bytes (after header and parity). */
  bufferSize: number;
  sig: number;
  start: number;
  used: number;
  valid: boolean;
  /** data[start, used) + data[0, start), when valid. */
  contents: Buffer;
}

export interface DecodedRecord {
  /** The name pstorefs gives it. */
  name: string;
  /** The record without its ramoops header, decompressed when it was compressed. */
  body: Buffer;
  timeSec: number | null;
  compressed: boolean;
}

const SIG = 0x43474244;
const HDR = 12;

function pow2Down(v: number): number {
  if (v <= 0) return 0;
  return 2 ** Math.floor(Math.log2(v));
}

export function zoneTable(p: RamoopsParamsForTest): Array<{ kind: DecodedZone['kind']; index: number; paddr: number; size: number; sig: number }> {
  const record = pow2Down(p.record_size);
  const con = pow2Down(p.console_size);
  const ftrace = pow2Down(p.ftrace_size ?? 4096);
  const pmsg = pow2Down(p.pmsg_size ?? 4096);
  const out: Array<{ kind: DecodedZone['kind']; index: number; paddr: number; size: number; sig: number }> = [];
  let at = p.mem_address;
  const dumpMem = p.mem_size - con - ftrace - pmsg;
  const cnt = Math.floor(dumpMem / record);
  const zone = Math.floor(dumpMem / cnt);
  for (let i = 0; i < cnt; i++) { out.push({ kind: 'dmesg', index: i, paddr: at, size: zone, sig: 0 }); at += zone; }
  if (con) { out.push({ kind: 'console', index: 0, paddr: at, size: con, sig: 0 }); at += con; }
  // ftrace zones carry LINUX_VERSION_CODE; 5.4.0 here.
  if (ftrace) { out.push({ kind: 'ftrace', index: 0, paddr: at, size: ftrace, sig: 0x050400 }); at += ftrace; }
  if (pmsg) { out.push({ kind: 'pmsg', index: 0, paddr: at, size: pmsg, sig: 0 }); at += pmsg; }
  if (p.devcoredump_size) out.push({ kind: 'devcoredump', index: 0, paddr: p.mem_address + p.mem_size, size: p.devcoredump_size, sig: 0x44435644 });
  return out;
}

export function dataSize(zoneSize: number, ecc: number): number {
  const n = zoneSize - HDR;
  if (!ecc) return n;
  const blocks = Math.ceil((n - ecc) / (128 + ecc));
  return n - (blocks + 1) * ecc;
}

function readAt(fd: number, at: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  fs.readSync(fd, b, 0, len, at);
  return b;
}

/** Every zone of the region as the image holds it. */
export function decodeZones(ramFile: string, p: RamoopsParamsForTest): DecodedZone[] {
  const ecc = p.ecc === 1 ? 16 : p.ecc ?? 0;
  const fd = fs.openSync(ramFile, 'r');
  try {
    return zoneTable(p).map((z) => {
      const h = readAt(fd, z.paddr, HDR);
      const sig = h.readUInt32LE(0);
      const start = h.readUInt32LE(4);
      const used = h.readUInt32LE(8);
      const bufferSize = dataSize(z.size, ecc);
      const valid = sig === ((SIG ^ z.sig) >>> 0) && used <= bufferSize && start <= used;
      const data = valid ? readAt(fd, z.paddr + HDR, used) : Buffer.alloc(0);
      return { ...z, bufferSize, sig, start, used, valid, contents: Buffer.concat([data.subarray(start, used), data.subarray(0, start)]) };
    });
  } finally {
    fs.closeSync(fd);
  }
}

/** The files a kernel reading this region exposes (without the ECC notice). */
export function decodeRecords(ramFile: string, p: RamoopsParamsForTest): DecodedRecord[] {
  const out: DecodedRecord[] = [];
  for (const z of decodeZones(ramFile, p)) {
    if (!z.valid || z.used === 0) continue;
    if (z.kind === 'dmesg' || z.kind === 'devcoredump') {
      const m = /^====(\d+)\.(\d+)-([CD])\n/.exec(z.contents.subarray(0, 40).toString('latin1'));
      if (!m) continue;
      const raw = z.contents.subarray(m[0].length);
      let body = raw;
      let compressed = m[3] === 'C';
      if (compressed) {
        try {
          body = zlib.inflateRawSync(raw);
          compressed = false;
        } catch {
          body = raw;
        }
      }
      out.push({ name: `${z.kind}-ramoops-${z.index}${compressed ? '.enc.z' : ''}`, body, timeSec: Number(m[1]), compressed });
    } else if (z.kind !== 'ftrace') {
      out.push({ name: `${z.kind}-ramoops-0`, body: z.contents, timeSec: null, compressed: false });
    }
  }
  return out;
}

export interface ElfNote { name: string; type: number; desc: Buffer }

/** The notes of an ELF64 little-endian file's PT_NOTE segments (from <elf.h>). */
export function elfNotes(file: Buffer): ElfNote[] {
  if (file.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
  const phoff = Number(file.readBigUInt64LE(32));
  const phentsize = file.readUInt16LE(54);
  const phnum = file.readUInt16LE(56);
  const notes: ElfNote[] = [];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (file.readUInt32LE(ph) !== 4) continue;
    const off = Number(file.readBigUInt64LE(ph + 8));
    const end = off + Number(file.readBigUInt64LE(ph + 32));
    for (let at = off; at + 12 <= end;) {
      const namesz = file.readUInt32LE(at);
      const descsz = file.readUInt32LE(at + 4);
      const type = file.readUInt32LE(at + 8);
      const name = file.subarray(at + 12, at + 12 + namesz).toString('latin1').replace(/\0+$/, '');
      const descAt = at + 12 + Math.ceil(namesz / 4) * 4;
      notes.push({ name, type, desc: file.subarray(descAt, descAt + descsz) });
      at = descAt + Math.ceil(descsz / 4) * 4;
    }
  }
  return notes;
}
