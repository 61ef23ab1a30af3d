/**
 * /proc/vmcore's builder (fs/proc/vmcore.c) on an ELF core header laid out
 * as kexec-tools lays it out, in a RAM buffer made by the test. The file it
 * serves is checked with readelf (program headers, notes) and, through the
 * offsets readelf reports, byte for byte against the RAM buffer; device
 * dumps (vmcoredd) land between the headers and the notes as siblings.md
 * describes: with one page of headers, the first dump's data at 0x1040.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NT_PRSTATUS, elf_prstatus, encodeElfNote, viewOf } from '../../../src/codec/index.js';
import { buildVmcoreLayout, readVmcore, withDeviceDumps, type VmcoreLayout } from '../../../src/kernel/index.js';
import { crashCreateElf64Headers } from '../../../kexec/crashdump_elf.js';
import { makeTempDir, removeTempDir } from '../../helpers/machine.js';
import { findTool, needs, runTool } from '../../helpers/tools.js';

const RAM = 8 << 20;
const ram = Buffer.alloc(RAM);
const NOTES = 0x300000;
const VMCI = 0x301000;
const BACKUP = 0x700000;
const HDR = 0x7f0000;
let dir: string;

const oldMem = (paddr: bigint, out: Uint8Array): void => { out.set(ram.subarray(Number(paddr), Number(paddr) + out.length)); };

beforeAll(() => {
  dir = makeTempDir('vmcore');
  crypto.randomFillSync(ram);
  const pr = elf_prstatus.zero();
  pr.pr_pid = 42;
  pr.pr_reg.rip = 0xffffffff81234567n;
  const notes = Buffer.alloc(368);
  notes.set(encodeElfNote('CORE', NT_PRSTATUS, elf_prstatus.toBytes(pr)));
  ram.set(notes, NOTES);
  const vmci = Buffer.alloc(4132);
  vmci.set(encodeElfNote('VMCOREINFO', 0, Buffer.from('OSRELEASE=5.4.0-test\nPAGESIZE=4096\n')));
  ram.set(vmci, VMCI);
  ram.copy(ram, BACKUP, 0x1000, 0x9fc00);
  const hdr = crashCreateElf64Headers({
    notes: [{ paddr: BigInt(NOTES), size: 368n }, { paddr: BigInt(VMCI), size: 4132n }],
    kernelText: { vaddr: 0xffffffff81000000n, paddr: 0x100000n, size: 0x200000n },
    ram: [{ start: 0x1000n, end: 0x9fbffn }, { start: 0x100000n, end: 0x5fffffn }],
    pageOffset: 0xffff888000000000n,
    backup: { srcStart: 0x1000n, srcSize: 0x9ec00n, dest: BigInt(BACKUP) },
  });
  ram.set(hdr, HDR);
  // Scribble the low memory the backup saved: /proc/vmcore must read the copy.
  ram.fill(0xee, 0x1000, 0x9fc00);
});
afterAll(() => removeTempDir(dir));

function writeFile(name: string, layout: VmcoreLayout, dumps: Array<{ size: number; read(o: number, out: Uint8Array): void }> = []): string {
  const out = Buffer.alloc(Number(layout.size));
  readVmcore(layout, oldMem, 0n, out, dumps);
  const f = path.join(dir, name);
  fs.writeFileSync(f, out);
  return f;
}

interface Ph { type: string; offset: number; paddr: number; filesz: number }
function programHeaders(file: string): Ph[] {
  const r = runTool('readelf', ['-l', '-W', file]);
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.split('\n').filter((l) => /^\s+(NOTE|LOAD)\s/.test(l)).map((l) => {
    const f = l.trim().split(/\s+/);
    return { type: f[0], offset: Number(f[1]), paddr: Number(f[3]), filesz: Number(f[4]) };
  });
}

const tools = needs('readelf', 'eu-readelf');

describe(`/proc/vmcore from an ELF core header${tools.reason}`, () => {
  it('merges the notes into one PT_NOTE first, page-aligned, and re-bases every PT_LOAD onto its data', () => {
    const layout = buildVmcoreLayout(oldMem, BigInt(HDR), 0x4000n, BigInt(RAM));
    expect(layout.elfcorebuf.length).toBe(4096);
    expect(layout.elfnotesOrigSize).toBe(368 - 12 + encodeElfNote('VMCOREINFO', 0, Buffer.from('OSRELEASE=5.4.0-test\nPAGESIZE=4096\n')).length);
    if (!findTool('readelf')) return;
    const file = writeFile('plain.vmcore', layout);
    const ph = programHeaders(file);
    expect(ph.map((p) => p.type)).toEqual(['NOTE', 'LOAD', 'LOAD', 'LOAD']);
    expect(ph[0].offset).toBe(0x1000);
    const bytes = fs.readFileSync(file);
    // The text load and the RAM loads hold RAM; the low range holds the backup copy, not the scribbled original.
    for (const p of ph.slice(1)) {
      const want = p.paddr === 0x1000 ? ram.subarray(BACKUP, BACKUP + p.filesz) : ram.subarray(p.paddr, p.paddr + p.filesz);
      expect(bytes.subarray(p.offset, p.offset + p.filesz).equals(want), `PT_LOAD paddr 0x${p.paddr.toString(16)}`).toBe(true);
      expect(p.offset % 4096).toBe(p.paddr % 4096);
    }
    const notes = runTool('readelf', ['-n', '-W', file]).stdout;
    expect(notes).toMatch(/CORE\s+0x00000150\s+NT_PRSTATUS/);
    expect(notes).toMatch(/VMCOREINFO\s+0x\w+\s+Unknown note type: \(0x00000000\)/);
  });

  it('device dumps go before the CPU and VMCOREINFO notes, the first one\'s data at 0x1040, every load moved down by them', () => {
    const base = buildVmcoreLayout(oldMem, BigInt(HDR), 0x4000n, BigInt(RAM));
    const dump = Buffer.alloc(4096);
    const view = viewOf(dump);
    view.setUint32(0, 8, true);
    view.setUint32(4, 4096 - 20, true);
    view.setUint32(8, 0x700, true);
    dump.write('LINUX\0\0\0', 12, 'latin1');
    dump.write('cxgb4_0000:02:00.4', 20, 'latin1');
    dump.write('device state', 64, 'latin1');
    const layout = withDeviceDumps(base, dump.length);
    const file = writeFile('dd.vmcore', layout, [{ size: dump.length, read: (o, out) => out.set(dump.subarray(o, o + out.length)) }]);
    const bytes = fs.readFileSync(file);
    expect(bytes.subarray(0x1040, 0x1040 + 12).toString('latin1')).toBe('device state');
    if (!findTool('readelf')) return;
    const ph = programHeaders(file);
    expect(ph[0].filesz).toBe(base.elfnotesOrigSize + 4096);
    for (const p of ph.slice(1)) {
      const want = p.paddr === 0x1000 ? ram.subarray(BACKUP, BACKUP + p.filesz) : ram.subarray(p.paddr, p.paddr + p.filesz);
      expect(bytes.subarray(p.offset, p.offset + p.filesz).equals(want)).toBe(true);
    }
    expect(runTool('readelf', ['-n', '-W', file]).stdout).toMatch(/LINUX\s+0x00000fec\s+Unknown note type: \(0x00000700\)/);
    if (findTool('eu-readelf')) expect(runTool('eu-readelf', ['-n', file]).stdout).toMatch(/LINUX\s+4076\s+<unknown>: 1792/);
  });

  it('a header that is not an ELF core, or a PT_LOAD outside RAM, is refused naming what is wrong', () => {
    expect(() => buildVmcoreLayout(oldMem, 0x200000n, 0x4000n, BigInt(RAM))).toThrow(/ELF core header: not found/);
    const hdr = Buffer.from(ram.subarray(HDR, HDR + 0x400));
    const saved = Buffer.from(hdr);
    // The last PT_LOAD's p_offset (phdr 4, offset 8 within it) pushed past the end of RAM.
    hdr.writeBigUInt64LE(BigInt(RAM), 64 + 4 * 56 + 8);
    ram.set(hdr, HDR);
    try {
      expect(() => buildVmcoreLayout(oldMem, BigInt(HDR), 0x4000n, BigInt(RAM))).toThrow(/PT_LOAD at 0x800000 .* is outside RAM/);
    } finally {
      ram.set(saved, HDR);
    }
  });
});
