/**
 * Writes a kdump-compressed file from the format's facts (makedumpfile
 * 1.7.2 diskdump_mod.h, write_kdump_header, write_kdump_pages): block 0 the
 * disk_dump_header, block 1 the kdump_sub_header (version 6) with the notes
 * after it, two bitmaps, a page_desc per dumped page in PFN order, then the
 * data, the shared zero page first. Independent of src/dump's reader: the
 * offsets are spelled out here, so a test can give libkdumpfile and our
 * reader files makedumpfile here cannot write (zstd, snappy pages).
 */
import fs from 'node:fs';

const BS = 4096;

export interface MkPage {
  pfn: number;
  /** The stored bytes: a page for raw, the compressed stream otherwise. */
  data: Uint8Array;
  /** DUMP_DH_COMPRESSED_* flag, or 0 for raw. */
  flags: number;
  /** A zero page: pointed at the shared zero page, no data of its own. */
  zero?: boolean;
}

export interface MkKdump {
  release: string;
  nodename: string;
  maxMapnr: number;
  status: number;
  dumpLevel: number;
  /** ELF notes (already encoded) copied into the sub header area. */
  notes: Uint8Array;
  /** Offset of the VMCOREINFO desc inside `notes`, and its size. */
  vmcoreinfo?: { offset: number; size: number };
  pages: MkPage[];
  /** ERASEINFO text, placed after the page data (offset_eraseinfo, size_eraseinfo). */
  eraseinfo?: string;
}

function utsField(view: DataView, at: number, s: string): void {
  Buffer.from(s, 'latin1').copy(new Uint8Array(view.buffer, view.byteOffset + at, 65));
}

export function writeKdump(file: string, k: MkKdump): void {
  const subHdrBlocks = Math.ceil((104 + k.notes.length) / BS);
  const bitmapBlocks = 2 * Math.max(1, Math.ceil(Math.ceil(k.maxMapnr / 8) / BS));
  const head = Buffer.alloc((1 + subHdrBlocks + bitmapBlocks) * BS);
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  head.write('KDUMP   ', 0, 'latin1');
  v.setInt32(8, 6, true);                         // header_version
  utsField(v, 12, 'Linux');                       // utsname.sysname
  utsField(v, 12 + 65, k.nodename);
  utsField(v, 12 + 130, k.release);
  utsField(v, 12 + 195, '#1 SMP');
  utsField(v, 12 + 260, 'x86_64');
  v.setBigInt64(408, 1795000000n, true);          // timestamp.tv_sec
  v.setUint32(424, k.status, true);
  v.setInt32(428, BS, true);                      // block_size
  v.setInt32(432, subHdrBlocks, true);
  v.setUint32(436, bitmapBlocks, true);
  v.setUint32(440, k.maxMapnr, true);
  v.setInt32(460, 1, true);                       // nr_cpus
  // kdump_sub_header at block 1.
  const s = BS;
  v.setInt32(s + 8, k.dumpLevel, true);
  v.setBigInt64(s + 48, BigInt(BS + 104), true);  // offset_note
  v.setBigUint64(s + 56, BigInt(k.notes.length), true);
  if (k.vmcoreinfo) {
    v.setBigInt64(s + 32, BigInt(BS + 104 + k.vmcoreinfo.offset), true);
    v.setBigUint64(s + 40, BigInt(k.vmcoreinfo.size), true);
  }
  v.setBigUint64(s + 96, BigInt(k.maxMapnr), true); // max_mapnr_64
  head.set(k.notes, BS + 104);
  const bm1 = (1 + subHdrBlocks) * BS;
  const bm2 = bm1 + (bitmapBlocks / 2) * BS;
  const pages = [...k.pages].sort((a, b) => a.pfn - b.pfn);
  for (let pfn = 0; pfn < k.maxMapnr; pfn++) head[bm1 + (pfn >> 3)] |= 1 << (pfn & 7);
  for (const p of pages) head[bm2 + (p.pfn >> 3)] |= 1 << (p.pfn & 7);
  const descAt = head.length;
  const dataAt = descAt + pages.length * 24;
  const descs = Buffer.alloc(pages.length * 24);
  const data: Buffer[] = [Buffer.alloc(BS)];
  let offset = dataAt + BS;
  pages.forEach((p, i) => {
    const d = new DataView(descs.buffer, descs.byteOffset + i * 24, 24);
    if (p.zero) {
      d.setBigInt64(0, BigInt(dataAt), true);
      d.setUint32(8, BS, true);
      return;
    }
    d.setBigInt64(0, BigInt(offset), true);
    d.setUint32(8, p.data.length, true);
    d.setUint32(12, p.flags, true);
    data.push(Buffer.from(p.data));
    offset += p.data.length;
  });
  if (k.eraseinfo) {
    v.setBigInt64(s + 64, BigInt(offset), true);
    v.setBigUint64(s + 72, BigInt(Buffer.byteLength(k.eraseinfo, 'latin1')), true);
    data.push(Buffer.from(k.eraseinfo, 'latin1'));
  }
  fs.writeFileSync(file, Buffer.concat([head, descs, ...data]), { mode: 0o600 });
}
