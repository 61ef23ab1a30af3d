/**
 * The device dump codecs against their C layouts (vmcoredd_header,
 * vmcoredd_node, cudbg's headers), and LKCD's device-dump block: written,
 * read back, and refused with one problem naming the structure when a byte
 * of it is altered.
 */
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { vmcoredd_header, vmcoreddHeaderBytes, encodeVmcoreddNote, validDumpName } from '../../../src/codec/index.js';
import {
  bytesSource, CsumRecords, encodeExtensionArea, LKCD_VMCOREDD_MAGIC, lkcd_ext_header, lkcd_vmcoredd_entry, lkcd_vmcoredd_head, parseExtensions,
  readLkcdDeviceDump, vmcoreddBlockBytes,
} from '../../../src/dump/index.js';
import {
  cudbg_compress_hdr, cudbg_entity_hdr, cudbg_hdr, CUDBG_CHUNK_SIZE, CUDBG_MIN_SIZE, CudbgWriter, vmcoredd_node,
} from '../../../src/kernel/index.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('codecs', () => {
  it('vmcoredd_header: 64 bytes, n_namesz 8, "LINUX\\0\\0\\0", n_descsz = note - 20, dump_name 44 bytes', () => {
    expect(vmcoredd_header.size).toBe(64);
    const h = vmcoreddHeaderBytes('cxgb4_0000:02:00.4', 4096);
    // n_namesz 8, n_descsz 0xfec, n_type 0x700, "LINUX" + 3 NULs, then the name NUL-padded to 44.
    expect(hex(h.subarray(0, 20))).toBe('08000000' + 'ec0f0000' + '00070000' + '4c494e5558000000');
    expect(Buffer.from(h.subarray(20, 38)).toString('latin1')).toBe('cxgb4_0000:02:00.4');
    expect(h.subarray(38).every((b) => b === 0)).toBe(true);
    const note = encodeVmcoreddNote('x_1', Uint8Array.of(1, 2, 3), 8192);
    expect(note.length).toBe(8192);
    expect(Buffer.from(note).readUInt32LE(4)).toBe(8192 - 20);
    expect([...note.subarray(64, 68)]).toEqual([1, 2, 3, 0]);
    expect([validDumpName(''), validDumpName('a'.repeat(43)), validDumpName('a'.repeat(44))]).toEqual([false, true, false]);
  });

  it('struct vmcoredd_node is 32 bytes (list_head, buf, unsigned int size, padding)', () => {
    expect(vmcoredd_node.size).toBe(32);
    expect(vmcoredd_node.offsetOf.size).toBe(24);
  });

  it('cudbg: cudbg_hdr 56, cudbg_entity_hdr 52, cudbg_compress_hdr 280 (u64 at 8); chunks of 63 KiB; min_size = 56 + 52 x 71', () => {
    expect([cudbg_hdr.size, cudbg_entity_hdr.size, cudbg_compress_hdr.size]).toEqual([56, 52, 280]);
    expect([cudbg_hdr.offsetOf.max_entities, cudbg_hdr.offsetOf.chip_ver, cudbg_hdr.offsetOf.dump_flags]).toEqual([20, 22, 23]);
    expect([cudbg_entity_hdr.offsetOf.num_pad, cudbg_entity_hdr.offsetOf.next_ext_offset]).toEqual([24, 28]);
    expect(cudbg_compress_hdr.offsetOf.decompress_size).toBe(8);
    expect(CUDBG_CHUNK_SIZE).toBe(64512);
    expect(CUDBG_MIN_SIZE).toBe(56 + 52 * 71);
  });

  it('a cudbg dump: the header says zlib and MINI (0x21), entity i\'s header at 56 + 52 (i - 1), pieces inflate back, entities padded to 4', () => {
    const buf = new Uint8Array(CUDBG_MIN_SIZE + 200_000);
    const w = new CudbgWriter(buf, true);
    const data = Buffer.alloc(70_000, 'cxgb4 ');
    w.entity(2, () => ({ pieces: [data] }));
    w.entity(19, () => ({ error: -24 }));
    w.finish(0x61);
    const b = Buffer.from(buf);
    expect([b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt16LE(20), b[22], b[23]]).toEqual([67856866, 56, 71, 0x61, 0x21]);
    const e = 56 + 52;
    const start = b.readUInt32LE(e + 4);
    const size = b.readUInt32LE(e + 8);
    expect(start).toBe(CUDBG_MIN_SIZE);
    expect(size % 4).toBe(0);
    const parts: Buffer[] = [];
    for (let p = start; p < start + size - b[e + 24];) {
      const c = Number(b.readBigUInt64LE(p + 16));
      parts.push(zlib.inflateSync(b.subarray(p + 280, p + 280 + c)));
      p += 280 + c;
    }
    expect(parts.map((x) => x.length)).toEqual([64512, 70_000 - 64512]);
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    const e19 = 56 + 52 * 18;
    expect([b.readUInt32LE(e19), b.readUInt32LE(e19 + 8), b.readInt32LE(e19 + 12)]).toEqual([19, 0, -24]);
    expect(b.readUInt32LE(12)).toBe(start + size);
  });
});

function area(devdumps: Array<{ header: Uint8Array; data: Uint8Array }>): Uint8Array {
  return encodeExtensionArea({
    ranges: [], devdumps,
    csum: { data_offset: 0x10000n, header_len: 0, header_crc32: 0, end_crc32: 0, flags: 0, records: new CsumRecords() },
  });
}

describe('LKCD\'s device-dump block (LKCDVMDD)', () => {
  const data = new Uint8Array(4096 * 3 - 64);
  data.set(Buffer.from('device state'), 0);
  data[5000] = 7;
  const dumps = [
    { header: vmcoreddHeaderBytes('cxgb4_0000:02:00.4', 4096 * 3), data },
    { header: vmcoreddHeaderBytes('nvme_0000:04:00.0', 4096), data: new Uint8Array(4096 - 64) },
  ];

  it('round trip: names, note sizes, data with its zeros; trailing zeros are not stored', () => {
    const a = area(dumps);
    expect(vmcoreddBlockBytes(dumps)).toBe(lkcd_ext_header.size + lkcd_vmcoredd_head.size + 2 * (lkcd_vmcoredd_entry.size + 64) + 5008);
    const ext = parseExtensions(bytesSource('A', a), 0n, BigInt(a.length));
    expect(ext.problems).toEqual([]);
    expect(ext.terminated).toBe(true);
    expect(ext.devdumps.map((d) => [d.name, d.noteSize, d.stored])).toEqual([['cxgb4_0000:02:00.4', 4096 * 3, 5001], ['nvme_0000:04:00.0', 4096, 0]]);
    const src = bytesSource('A', a);
    expect(Buffer.from(readLkcdDeviceDump(src, ext.devdumps[0])).equals(Buffer.from(data))).toBe(true);
    expect(readLkcdDeviceDump(src, ext.devdumps[1]).every((x) => x === 0)).toBe(true);
    expect(hex(ext.devdumps[0].header)).toBe(hex(dumps[0].header));
  });

  it('an altered byte of the block: its CRC32 fails, one problem names the block, no dump is trusted', () => {
    const a = Buffer.from(area(dumps));
    const at = a.indexOf(Buffer.from(LKCD_VMCOREDD_MAGIC, 'latin1'));
    a[at + lkcd_ext_header.size + 100] ^= 0x10;
    const ext = parseExtensions(bytesSource('A', a), 0n, BigInt(a.length));
    expect(ext.devdumps).toEqual([]);
    expect(ext.problems.map((p) => p.error.message)).toEqual([expect.stringMatching(/^LKCDVMDD block crc32 0x[0-9a-f]+ does not match its entries/)]);
  });

  it('a note whose n_descsz disagrees with note_size (block CRC32 recomputed): one problem naming vmcoredd_header', () => {
    const a = Buffer.from(area(dumps));
    const at = a.indexOf(Buffer.from(LKCD_VMCOREDD_MAGIC, 'latin1'));
    const body = at + lkcd_ext_header.size;
    const len = Number(a.readBigUInt64LE(body));
    a.writeUInt32LE(0x1234, body + lkcd_vmcoredd_head.size + lkcd_vmcoredd_entry.size + 4);
    a.writeUInt32LE(zlib.crc32(a.subarray(body, body + len)) >>> 0, at + 12);
    const ext = parseExtensions(bytesSource('A', a), 0n, BigInt(a.length));
    expect(ext.problems[0].error.message).toMatch(/device dump block: entry 0: not a vmcoredd note of 12288 bytes \(n_type 0x700, n_namesz 8, n_descsz 4660\)/);
    expect(ext.problems[0].error.where.struct).toBe('vmcoredd_header');
  });

  it('a stored byte changed after the entry\'s CRC32 was taken: reading that dump fails, naming it', () => {
    const a = Buffer.from(area(dumps));
    const ext = parseExtensions(bytesSource('A', a), 0n, BigInt(a.length));
    const d = { ...ext.devdumps[0], crc32: ext.devdumps[0].crc32 ^ 1 };
    expect(() => readLkcdDeviceDump(bytesSource('A', a), d)).toThrow(/^device dump cxgb4_0000:02:00\.4: its data does not match its CRC32/);
  });
});
