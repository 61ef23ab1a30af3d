import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DumpError, FaultError, viewOf } from '../../../src/codec/index.js';
import {
  Elf64_Ehdr, Elf64_Nhdr, Elf64_Phdr, ET_CORE, NT_PRSTATUS, PT_LOAD, PT_NOTE, VMCOREINFO_NOTE_NAME, elf_prstatus,
} from '../../../src/codec/elf.js';
import {
  DUMP_FORMATS, LKCD_OFFSET_TO_FIRST_PAGE, closeDumpFile, dump_header_v8, lkcd_missing_range, lkcd_missing_trailer, lkcdFormat, openDump, openDumpFile,
  openLkcdFile, verifyLkcd, type LkcdPageRecord, type ProbedDump,
} from '../../../src/dump/formats/index.js';
import { DumpMemory, kernelSymbolsFromMap, readSystemMap } from '../../../src/dump/dump_memory.js';
import { exportDumpAsElf } from '../../../src/dump/export_elf.js';
import { DUMP_DH_COMPRESSED, DUMP_DH_RAW } from '../../../src/dump/codecs/index.js';
import { dump_header } from '../../../src/dump/lkcd/dump_header.js';
import { dump_page } from '../../../src/dump/lkcd/dump_page.js';
import { task_struct } from '../../../src/kernel/structs/task_struct.js';
import { fixtureSpec, writeLkcd, type MklkcdResult } from '../../tools/mklkcd.js';

const PAGE = 4096;
let dir: string;
let serial = 0;

beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-reader-')); });
afterAll(() => { fs.rmSync(dir, { recursive: true, force: true }); });

/** Builds `spec` into a fresh file; returns its path and what mklkcd wrote. */
function make(spec: string): { file: string; built: MklkcdResult } {
  const file = path.join(dir, `dump.${serial++}`);
  return { file, built: writeLkcd(spec, file) };
}

function caught(fn: () => unknown): DumpError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DumpError);
    return e as DumpError;
  }
  throw new Error('expected a DumpError, nothing was thrown');
}

function withDump<T>(file: string, fn: (d: ProbedDump) => T): T {
  const d = openDump(file);
  try {
    return fn(d);
  } finally {
    d.close();
  }
}

const fieldOffset = (rec: bigint, field: keyof typeof dump_page.offsetOf): bigint => rec + BigInt(dump_page.offsetOf[field]);

// ---- valid dumps ------------------------------------------------------------------------------

const CODECS = ['none', 'rle', 'gzip'] as const;
const LAYOUTS = ['layout-normal', 'layout-out-of-order', 'layout-gapped'] as const;
const MATRIX = CODECS.flatMap((codec) => LAYOUTS.map((layout) => ({ codec, layout })));

describe.each(MATRIX)('$codec x $layout', ({ codec, layout }) => {
  let file: string;
  let built: MklkcdResult;
  beforeAll(() => {
    ({ file, built } = make(`compress ${codec}\n${fixtureSpec(layout)}`));
  });

  it('has the records the per-page rule gives', () => {
    const flags = built.records.filter((r) => r.kind === 'page').map((r) => r.dpFlags);
    if (codec === 'none') {
      expect(flags.every((f) => f === DUMP_DH_RAW)).toBe(true);
    } else {
      expect(flags).toContain(DUMP_DH_COMPRESSED);
      expect(flags).toContain(DUMP_DH_RAW);
    }
  });

  it('reads every page equal to the spec, and lists them in file order', () => {
    withDump(file, (d) => {
      expect(d.attrs['file.format']).toBe('lkcd');
      expect(d.attrs['dump.compression']).toBe(codec);
      expect(d.attrs['dump.pages']).toBe(built.order.length);
      expect(d.attrs['dump.truncated']).toBe(false);
      expect([...d.pages()]).toEqual(built.order);
      expect(built.pages.size).toBe(built.order.length);
      for (const [pfn, bytes] of built.pages) expect(Buffer.from(d.readPage(pfn)).equals(Buffer.from(bytes))).toBe(true);
    });
  });

  it('faults for a page the dump lacks, naming its address', () => {
    withDump(file, (d) => {
      const present = new Set(built.order);
      let absent = 0n;
      while (present.has(absent)) absent++;
      const err = caught(() => d.readPage(absent));
      expect(err).toBeInstanceOf(FaultError);
      expect(err.where.address).toBe(absent * BigInt(PAGE));
      expect(err.where.space).toBe('phys');
    });
  });

  it('reads the same pages through a caller index, without a walk', () => {
    const records = new Map<bigint, LkcdPageRecord>();
    for (const r of built.records) if (r.kind === 'page') records.set(r.pfn!, { offset: r.offset, size: r.dpSize, flags: r.dpFlags });
    let asked = 0;
    const d = openLkcdFile(file, { index: (pfn) => { asked++; return records.get(pfn) ?? null; }, endOffset: built.endOffset! });
    try {
      for (const [pfn, bytes] of [...built.pages].reverse()) expect(Buffer.from(d.readPage(pfn)).equals(Buffer.from(bytes))).toBe(true);
      expect(asked).toBe(built.pages.size);
      expect(d.attrs['dump.truncated']).toBe(false);
      expect(caught(() => d.readPage(0x7fffffn)).code).toBe('FAULT');
    } finally {
      d.close();
    }
  });

  it('verifies clean', () => {
    const v = verifyLkcd(file);
    expect(v.bad).toEqual([]);
    expect(v.pages).toBe(built.order.length);
    expect(v.compressed + v.raw).toBe(v.pages);
    expect(v.raw).toBe(built.records.filter((r) => r.dpFlags === DUMP_DH_RAW).length);
    expect(v.endOffset).toBe(built.endOffset);
  });
});

describe('round trip: spec -> file -> reader', () => {
  it.each(['layout-normal', 'pagetables', 'truncated-with-trailer', 'v8', 'live', 'flipped-bit'])('%s', (name) => {
    const { file, built } = make(fixtureSpec(name));
    withDump(file, (d) => {
      for (const [pfn, bytes] of built.pages) {
        if (name === 'flipped-bit' && pfn === 5n) continue;
        expect(Buffer.from(d.readPage(pfn)).equals(Buffer.from(bytes)), `pfn ${pfn}`).toBe(true);
      }
    });
  });

  it('mklkcd writes the header codecs byte for byte', () => {
    const { built } = make(fixtureSpec('layout-normal'));
    const h = dump_header.decode(viewOf(built.bytes), 0);
    expect(dump_header.toBytes(h)).toEqual(built.bytes.subarray(0, dump_header.size));
    expect(dump_header_v8.size).toBe(734);
    expect(dump_header.size).toBe(742);
    expect(lkcd_missing_trailer.size).toBe(16);
    expect(lkcd_missing_range.size).toBe(16);
  });
});

describe('attributes', () => {
  it('come from both headers', () => {
    const { file } = make(fixtureSpec('layout-normal'));
    withDump(file, (d) => {
      const a = d.attrs;
      expect(a['file.description']).toBe('Linux Kernel Crash Dump v9');
      expect(a['arch.name']).toBe('x86_64');
      expect(a['arch.page_size']).toBe(PAGE);
      expect(a['linux.uts.release']).toBe('5.4.0-test');
      expect(a['linux.uts.machine']).toBe('x86_64');
      expect(a['linux.uts.nodename']).toBe('mklkcd');
      expect(a['linux.uts.version']).toBe('#1 SMP');
      expect(a['crash.panic_string']).toBe('Kernel panic - not syncing: sysrq triggered crash');
      expect(a['crash.time']).toBe(1700000000n);
      expect(a['crash.current_task']).toBe(0xffff888001a3c000n);
      expect(a['crash.regs'].ip).toBe(0xffffffff81234560n);
      expect(a['crash.regs'].sp).toBe(0xffffc90000013e58n);
      expect(a['dump.level']).toBe(0xf);
      expect(a['dump.data_offset']).toBe(65536n);
    });
  });

  it('v8: records at LKCD_OFFSET_TO_FIRST_PAGE', () => {
    const { file } = make(fixtureSpec('v8'));
    withDump(file, (d) => {
      expect(d.attrs['file.description']).toBe('Linux Kernel Crash Dump v8');
      expect(d.attrs['dump.data_offset']).toBe(BigInt(LKCD_OFFSET_TO_FIRST_PAGE));
      expect(d.attrs['dump.compression']).toBe('rle');
      expect(d.attrs['linux.uts.release']).toBe('2.6.5-v8');
    });
  });

  it('v9: records at dh_dump_buffer_size', () => {
    const { file, built } = make(`buffer_size 0x40000\n${fixtureSpec('layout-gapped')}`);
    expect(built.dataOffset).toBe(0x40000);
    withDump(file, (d) => {
      expect(d.attrs['dump.data_offset']).toBe(0x40000n);
      expect([...d.pages()]).toEqual(built.order);
    });
  });

  it('DUMP_MAGIC_LIVE is LKCD too', () => {
    const { file } = make(fixtureSpec('live'));
    withDump(file, (d) => expect(d.attrs['dump.flags']).toBe(1));
  });

  it('an end record with DUMP_DH_TRUNCATED, the missing-ranges trailer and tail fill', () => {
    const { file } = make(fixtureSpec('truncated-with-trailer'));
    const d = openLkcdFile(file);
    try {
      expect(d.attrs['dump.truncated']).toBe(true);
      expect(d.missingRanges()).toEqual([[3n, 0x10n], [0x20n, 0x21n]]);
    } finally {
      d.close();
    }
    expect(verifyLkcd(file)).toMatchObject({ bad: [], truncated: true, missingRanges: [[3n, 0x10n], [0x20n, 0x21n]] });
  });

  it('without a trailer, missingRanges() is empty', () => {
    const { file } = make(fixtureSpec('layout-normal'));
    const d = openLkcdFile(file);
    try {
      expect(d.missingRanges()).toEqual([]);
    } finally {
      d.close();
    }
  });

  it('dump.truncated is found lazily when the caller index gives no end offset', () => {
    const { file, built } = make(fixtureSpec('truncated-with-trailer'));
    const rec = built.records[0];
    const d = openLkcdFile(file, { index: (pfn) => (pfn === rec.pfn ? { offset: rec.offset, size: rec.dpSize, flags: rec.dpFlags } : null) });
    try {
      expect(Buffer.from(d.readPage(1n)).equals(Buffer.from(built.pages.get(1n)!))).toBe(true);
      expect(d.attrs['dump.truncated']).toBe(true);
      expect(d.endOffset).toBe(built.endOffset);
    } finally {
      d.close();
    }
  });

  it('a stale caller index is CORRUPT, not a wrong page', () => {
    const { file, built } = make(fixtureSpec('layout-normal'));
    const other = built.records[1];
    const d = openLkcdFile(file, { index: () => ({ offset: other.offset, size: other.dpSize, flags: other.dpFlags }) });
    try {
      const err = caught(() => d.readPage(0n));
      expect(err.code).toBe('CORRUPT');
      expect(err.where.field).toBe('dp_address');
    } finally {
      d.close();
    }
  });

  it('does not trust dh_num_pages', () => {
    const { file, built } = make(`num_pages 0xffffffff\n${fixtureSpec('layout-normal')}`);
    withDump(file, (d) => expect(d.attrs['dump.pages']).toBe(built.order.length));
  });
});

// ---- broken dumps -----------------------------------------------------------------------------

interface Negative {
  spec: string;
  code: string;
  field: string;
  /** 'open': opening (probe) throws; 'read': opening works, reading `pfn` throws. */
  when: 'open' | 'read';
  pfn?: bigint;
  offset?: (b: MklkcdResult) => bigint;
}

const rec = (b: MklkcdResult, i: number): bigint => b.records[i].offset;

const NEGATIVE: Negative[] = [
  { spec: 'bad-duplicate-pfn', code: 'CORRUPT', field: 'dp_address', when: 'open', offset: (b) => fieldOffset(rec(b, 2), 'dp_address') },
  { spec: 'bad-raw-size', code: 'CORRUPT', field: 'dp_size', when: 'open', offset: (b) => fieldOffset(rec(b, 1), 'dp_size') },
  { spec: 'bad-oversized', code: 'CORRUPT', field: 'dp_size', when: 'open', offset: (b) => fieldOffset(rec(b, 0), 'dp_size') },
  { spec: 'bad-decompressed-size', code: 'CORRUPT', field: 'dp_size', when: 'read', pfn: 2n, offset: (b) => fieldOffset(rec(b, 1), 'dp_size') },
  { spec: 'bad-unknown-flags', code: 'CORRUPT', field: 'dp_flags', when: 'open', offset: (b) => fieldOffset(rec(b, 1), 'dp_flags') },
  { spec: 'bad-zero-flags', code: 'CORRUPT', field: 'dp_flags', when: 'open' },
  { spec: 'bad-compressed-in-none', code: 'CORRUPT', field: 'dp_flags', when: 'open' },
  { spec: 'bad-unaligned', code: 'CORRUPT', field: 'dp_address', when: 'open' },
  { spec: 'bad-unknown-compression', code: 'UNSUPPORTED', field: 'dh_dump_compress', when: 'open' },
  { spec: 'bad-lz4-in-file', code: 'UNSUPPORTED', field: 'dh_dump_compress', when: 'open' },
  { spec: 'bad-version', code: 'UNSUPPORTED', field: 'dh_version', when: 'open', offset: () => 8n },
  { spec: 'bad-mclx-version', code: 'UNSUPPORTED', field: 'dh_version', when: 'open' },
  { spec: 'big-endian', code: 'UNSUPPORTED', field: 'dh_magic_number', when: 'open' },
  { spec: 'bad-header-size', code: 'CORRUPT', field: 'dh_header_size', when: 'open' },
  { spec: 'bad-buffer-size', code: 'CORRUPT', field: 'dh_dump_buffer_size', when: 'open' },
  { spec: 'bad-asm-magic', code: 'CORRUPT', field: 'dha_magic_number', when: 'open' },
  { spec: 'bad-end-size', code: 'CORRUPT', field: 'dp_size', when: 'open' },
  { spec: 'bad-trailer-crc', code: 'CORRUPT', field: 'crc32', when: 'open', offset: (b) => b.trailerOffset! + 12n },
  { spec: 'bad-trailer-count', code: 'CORRUPT', field: 'count', when: 'open', offset: (b) => b.trailerOffset! + 8n },
];

describe.each(NEGATIVE)('$spec', ({ spec, code, field, when, pfn, offset }) => {
  it(`${when === 'open' ? 'opening' : `reading PFN ${pfn}`} fails with ${code} naming ${field}`, () => {
    const { file, built } = make(fixtureSpec(spec));
    const err = when === 'open'
      ? caught(() => openDump(file))
      : caught(() => withDump(file, (d) => d.readPage(pfn!)));
    expect(err.code).toBe(code);
    expect(err.where.field).toBe(field);
    expect(err.where.file).toBe(file);
    if (offset) expect(BigInt(err.where.offset!)).toBe(offset(built));
  });

  if (when === 'open') {
    it('probe throws: a broken LKCD file is never "unknown format"', () => {
      const { file } = make(fixtureSpec(spec));
      const f = openDumpFile(file);
      try {
        expect(caught(() => lkcdFormat.probe(f)).code).toBe(code);
      } finally {
        closeDumpFile(f);
      }
    });
  }
});

// ---- dumps cut short: no END record ------------------------------------------------------------

interface CutShort {
  spec: string;
  /** Records whole before the cut (the first `whole` records mklkcd wrote). */
  whole: number;
  /** What the note says about where the file ends. */
  says: RegExp;
  /** Where the walk stopped (the cut record's header, or the end of the file), for endOffset's error. */
  stop: (b: MklkcdResult) => bigint;
}

const CUT: CutShort[] = [
  { spec: 'cut-no-end', whole: 2, says: /no end record: the dump ends at offset/, stop: (b) => BigInt(b.bytes.length) },
  { spec: 'cut-mid-page', whole: 1, says: /inside the page data of the record at offset/, stop: (b) => rec(b, 1) },
  { spec: 'cut-mid-header', whole: 1, says: /inside the record header at offset/, stop: (b) => rec(b, 1) },
];

describe.each(CUT)('$spec', ({ spec, whole, says, stop }) => {
  it('opens (strict and salvage): TRUNCATED with a note, no problem, every whole record reads as written, the cut one faults', () => {
    const { file, built } = make(fixtureSpec(spec));
    for (const mode of ['strict', 'salvage'] as const) {
      const d = openDump(file, { mode, verifyPages: true });
      try {
        const integ = d.integrity();
        expect([integ.state, integ.checksum, integ.problems]).toEqual(['truncated', 'unverified', []]);
        expect(integ.notes.join('\n')).toMatch(/^cut short: no END record, the file ends at offset 0x[0-9a-f]+; \d+ page records before it are whole/m);
        expect(integ.notes.join('\n')).toMatch(says);
        expect(d.attrs['dump.truncated']).toBe(true);
        const pages = built.records.filter((r) => r.kind === 'page');
        expect([...d.pages()]).toEqual(pages.slice(0, whole).map((r) => r.pfn));
        expect(d.attrs['dump.pages']).toBe(whole);
        for (const r of pages.slice(0, whole)) expect(Buffer.from(d.readPage(r.pfn!)).equals(Buffer.from(built.pages.get(r.pfn!)!))).toBe(true);
        for (const r of pages.slice(whole)) expect(() => d.readPage(r.pfn!)).toThrow(FaultError);
      } finally {
        d.close();
      }
    }
  });

  it('has no END record to give: endOffset throws TRUNCATED where the walk stopped (the device scan refuses such a dump)', () => {
    const { file, built } = make(fixtureSpec(spec));
    const d = openLkcdFile(file);
    try {
      const err = caught(() => d.endOffset);
      expect(err.code).toBe('TRUNCATED');
      expect(err.where.file).toBe(file);
      expect(BigInt(err.where.offset!)).toBeGreaterThanOrEqual(stop(built));
    } finally {
      d.close();
    }
  });
});

describe('malformed input never sizes an allocation', () => {
  it('dp_size 0xffffffff is rejected against the page size', () => {
    const { file } = make('@0x1000 raw 11*4096\nend\nset32 rec0+8 0xffffffff');
    const err = caught(() => openDump(file));
    expect([err.code, err.where.field]).toEqual(['CORRUPT', 'dp_size']);
  });

  it('a trailer count of 2^32-1 is checked against the file size', () => {
    const { file } = make('@0x1000 raw 11*4096\nend\ntrailer 1-2\nset32 trailer+8 0xffffffff');
    const err = caught(() => openDump(file));
    expect([err.code, err.where.field]).toEqual(['CORRUPT', 'count']);
  });

  it('a truncated header names the field that ran short', () => {
    const { file } = make('@0x1000 raw 11*4096\nend\ntruncate 300');
    const err = caught(() => openDump(file));
    expect(err.code).toBe('TRUNCATED');
    expect(err.where.struct).toBe('dump_header');
    expect(err.where.field).toBe('dh_panic_string');
  });

  it('a file that ends before the first record is TRUNCATED at that offset', () => {
    const { file } = make('@0x1000 raw 11*4096\nend\ntruncate 0x8000');
    const err = caught(() => openDump(file));
    expect(err.code).toBe('TRUNCATED');
    expect(err.where.offset).toBe(65536n);
  });
});

describe('probe', () => {
  it.each([
    ['an empty file', new Uint8Array(0)],
    ['a short file', new Uint8Array([0xed, 0x23, 0x8f])],
    ['text', new Uint8Array(Buffer.from('not a dump at all\n'.repeat(100)))],
  ])('returns null for %s, and openDump says "unknown dump format"', (_, bytes) => {
    const file = path.join(dir, `other.${serial++}`);
    fs.writeFileSync(file, bytes);
    const f = openDumpFile(file);
    try {
      expect(lkcdFormat.probe(f)).toBeNull();
    } finally {
      closeDumpFile(f);
    }
    const err = caught(() => openDump(file));
    expect(err.code).toBe('UNSUPPORTED');
    expect(err.message).toContain('unknown dump format');
    expect(caught(() => openLkcdFile(file)).code).toBe('UNSUPPORTED');
  });

  it('16 bytes of an ELF header: not LKCD; the ELF reader of the table takes it and finds it cut short', () => {
    const file = path.join(dir, `other.${serial++}`);
    fs.writeFileSync(file, Buffer.from('7f454c46020101000000000000000000', 'hex'));
    const f = openDumpFile(file);
    try {
      expect(lkcdFormat.probe(f)).toBeNull();
    } finally {
      closeDumpFile(f);
    }
    const err = caught(() => openDump(file));
    expect([err.code, err.where.struct]).toEqual(['TRUNCATED', 'Elf64_Ehdr']);
  });

  it('a missing file is one NOINPUT line naming it', () => {
    const file = path.join(dir, 'no-such-dump');
    const err = caught(() => openDump(file));
    expect(err.code).toBe('NOINPUT');
    expect(err.message).toContain(file);
    expect(err.message).not.toContain('\n');
  });

  it('the table holds lkcd, then makedumpfile\'s kdump-compressed format and ELF vmcores', () => {
    expect(DUMP_FORMATS.map((f) => f.name)).toEqual(['lkcd', 'diskdump', 'elf']);
  });
});

// ---- verify -----------------------------------------------------------------------------------

describe('verifyLkcd', () => {
  it('reports the exact PFN and offset of a flipped data bit, and goes on', () => {
    const { file, built } = make(fixtureSpec('flipped-bit'));
    const progress: bigint[] = [];
    const v = verifyLkcd(file, (done) => progress.push(done));
    expect(v.pages).toBe(4);
    expect(v.compressed + v.raw).toBe(4);
    expect(v.bad).toHaveLength(1);
    expect(v.bad[0].pfn).toBe(5n);
    expect(v.bad[0].offset).toBe(built.records[2].offset);
    expect(v.bad[0].error.code).toBe('CORRUPT');
    expect(v.endOffset).toBe(built.endOffset);
    expect(progress.at(-1)).toBe(BigInt(built.bytes.length));
    // The pages after the bad one were checked too: the same file opens, and they read.
    withDump(file, (d) => expect(Buffer.from(d.readPage(6n)).equals(Buffer.from(built.pages.get(6n)!))).toBe(true));
  });

  it('collects every bad page, not just the first', () => {
    const { file, built } = make(fixtureSpec('bad-duplicate-pfn'));
    const v = verifyLkcd(file);
    expect(v.pages).toBe(3);
    expect(v.bad.map((b) => [b.pfn, b.offset, b.error.where.field])).toEqual([[1n, built.records[2].offset, 'dp_address']]);
  });

  it('a dump with no end record is TRUNCATED, not damaged: both pages verified, the note says where it ends', () => {
    const { file, built } = make(fixtureSpec('cut-no-end'));
    const v = verifyLkcd(file);
    expect(v.pages).toBe(2);
    expect(v.endOffset).toBeNull();
    expect([v.state, v.truncated, v.bad]).toEqual(['truncated', true, []]);
    expect(v.notes[0]).toContain(`the file ends at offset 0x${built.bytes.length.toString(16)}`);
  });

  it('reports a page that decompresses to the wrong size', () => {
    const { file } = make(fixtureSpec('bad-decompressed-size'));
    const v = verifyLkcd(file);
    expect(v.bad.map((b) => b.pfn)).toEqual([2n]);
  });

  it('throws for a broken header', () => {
    const { file } = make(fixtureSpec('bad-version'));
    expect(caught(() => verifyLkcd(file)).code).toBe('UNSUPPORTED');
  });
});

// ---- DumpMemory ---------------------------------------------------------------------------------

describe('DumpMemory over hand-made page tables (pagetables.spec)', () => {
  let d: ProbedDump;
  let built: MklkcdResult;
  let mem: DumpMemory;
  beforeAll(() => {
    const made = make(fixtureSpec('pagetables'));
    built = made.built;
    d = openDump(made.file);
    mem = new DumpMemory(d, 0x1000n);
  });
  afterAll(() => d.close());

  const page = (pfn: bigint): Buffer => Buffer.from(built.pages.get(pfn)!);

  it('phys reads assemble pages', () => {
    expect(Buffer.from(mem.read('phys', 0x10ff0n, 16)).toString('latin1')).toBe('end of page 0x10');
    expect(Buffer.from(mem.read('phys', 0x1ff8n, 16)).equals(Buffer.concat([page(1n).subarray(0xff8), page(2n).subarray(0, 8)]))).toBe(true);
  });

  it('a phys read faults at the first byte the dump lacks', () => {
    const err = caught(() => mem.read('phys', 0x10ff0n, 0x20));
    expect(err).toBeInstanceOf(FaultError);
    expect(err.where).toMatchObject({ address: 0x11000n, space: 'phys' });
  });

  it('PGD[511] -> PUD[510] -> PMD[8] -> PTE[0]/PTE[1]: a read across two 4 KiB pages that are not contiguous', () => {
    const got = Buffer.from(mem.read('virt', 0xffffffff81000ff0n, 0x20));
    expect(got.subarray(0, 16).toString('latin1')).toBe('end of page 0x10');
    expect(got.subarray(16).toString('latin1')).toBe('start of page 7\u0007');
    expect(mem.virtToPhys(0xffffffff81001234n)).toBe(0x7234n);
  });

  it('PMD[9] is a 2 MiB page; PUD[0] of the direct map a 1 GiB page', () => {
    expect(Buffer.from(mem.read('virt', 0xffffffff81205000n, PAGE)).equals(page(0x205n))).toBe(true);
    expect(mem.virtToPhys(0xffffffff81205abcn)).toBe(0x205abcn);
    expect(Buffer.from(mem.read('virt', 0xffff888000010000n, PAGE)).equals(page(0x10n))).toBe(true);
  });

  it('a virt read faults at the first virtual byte whose page the dump lacks', () => {
    const err = caught(() => mem.read('virt', 0xffffffff81001ff8n, 16));
    expect(err).toBeInstanceOf(FaultError);
    expect(err.where).toMatchObject({ address: 0xffffffff81002000n, space: 'virt' });
  });

  it('an unmapped address faults in virt space', () => {
    const err = caught(() => mem.read('virt', 0xffffffff81400000n, 8));
    expect(err.where).toMatchObject({ address: 0xffffffff81400000n, space: 'virt' });
  });
});

describe('System.map', () => {
  const MAP = [
    'ffffffff80000000 T _text',
    'ffffffff80001000 B init_top_pgt',
    'ffffffff80003000 D vmcoreinfo_data',
    'ffffffff80004000 D vmcoreinfo_size',
    'ffffffff80004008 D log_buf',
    'ffffffff80004010 D log_buf_len',
    'ffffffff80004014 D log_first_idx',
    'ffffffff80004018 D log_next_idx',
    'ffffffff80004020 D log_first_seq',
    'ffffffff80004028 D log_next_seq',
    'ffffffff80006000 D init_task',
    'ffffffff80008000 B _end',
    '',
  ].join('\n');

  it('parses and gives cr3 = phys of init_top_pgt', () => {
    const map = readSystemMap(MAP);
    expect(map.get('_text')).toBe(0xffffffff80000000n);
    const syms = kernelSymbolsFromMap(map);
    expect(syms.cr3).toBe(0x1000n);
    expect(syms.log.log_next_seq).toBe(0xffffffff80004028n);
    expect(syms.init_task).toBe(0xffffffff80006000n);
  });

  it('names a missing symbol and a malformed line', () => {
    const noPgt = readSystemMap(MAP.replace(/.*init_top_pgt\n/, ''));
    expect(caught(() => kernelSymbolsFromMap(noPgt)).where.field).toBe('init_top_pgt');
    const err = caught(() => readSystemMap(`${MAP}garbage here\n`));
    expect(err.code).toBe('CORRUPT');
    expect(err.message).toContain(`line ${MAP.split('\n').length}`);
  });

  it('exportDumpAsElf: PT_NOTE first, kernel text and direct map loads, pages at their offsets', () => {
    const vmcoreinfo = 'OSRELEASE=5.4.0-test\nPAGESIZE=4096\nSYMBOL(init_top_pgt)=ffffffff80001000\n';
    const pid = 4242;
    const spec = [
      'compress gzip',
      'current_task 0xffffffff80006000',
      'reg ip 0xffffffff80000abc',
      'reg sp 0xffffffff80007f00',
      '# PGD[273] and PGD[511] -> PUD 0x2000; PUD[0] and PUD[510]: 1 GiB pages at 0',
      '@0x1000 auto u64@0x888=0x2063 u64@0xff8=0x2063',
      '@0x2000 auto u64@0x0=0xe3 u64@0xff0=0xe3',
      `@0x3000 auto str@0=${JSON.stringify(vmcoreinfo)}`,
      `@0x4000 auto u64@0=${vmcoreinfo.length}`,
      `@0x6000 auto u32@${task_struct.offsetOf.pid}=${pid}`,
      '@0x10000 auto random:99',
      'end',
    ].join('\n');
    const { file, built } = make(spec);
    const out = path.join(dir, 'export.vmcore');
    const d = openDump(file);
    let result;
    try {
      result = exportDumpAsElf(d, readSystemMap(MAP), out);
    } finally {
      d.close();
    }
    expect(result.maxPfn).toBe(0x10n);
    expect(result.holePages).toBe(0x11n - 6n);

    const bytes = fs.readFileSync(out);
    const view = viewOf(bytes);
    const eh = Elf64_Ehdr.decode(view, 0);
    expect(eh.e_type).toBe(ET_CORE);
    // Pages 1-4, 6 and 0x10 are present: one PT_LOAD per run, in the kernel-text mapping (which covers
    // physical [0, 0x8000)) and in the direct map; pages 0, 5, 7-0xf are in none.
    expect(eh.e_phnum).toBe(6);
    const ph = [0, 1, 2, 3, 4, 5].map((i) => Elf64_Phdr.decode(view, Number(eh.e_phoff) + i * Elf64_Phdr.size));
    expect(ph[0].p_type).toBe(PT_NOTE);
    const loads = ph.slice(1).map((p) => [p.p_type, p.p_vaddr, p.p_paddr, p.p_memsz, p.p_filesz, p.p_align]);
    expect(loads).toEqual([
      [PT_LOAD, 0xffffffff80001000n, 0x1000n, 0x4000n, 0x4000n, 0n],
      [PT_LOAD, 0xffffffff80006000n, 0x6000n, 0x1000n, 0x1000n, 0n],
      [PT_LOAD, 0xffff888000001000n, 0x1000n, 0x4000n, 0x4000n, 0n],
      [PT_LOAD, 0xffff888000006000n, 0x6000n, 0x1000n, 0x1000n, 0n],
      [PT_LOAD, 0xffff888000010000n, 0x10000n, 0x1000n, 0x1000n, 0n],
    ]);
    expect(result.loads).toHaveLength(5);

    // Notes: NT_PRSTATUS with the dumping CPU's registers and pid, then VMCOREINFO.
    const notes = bytes.subarray(Number(ph[0].p_offset), Number(ph[0].p_offset + ph[0].p_filesz));
    const parsed: Array<{ name: string; type: number; desc: Uint8Array }> = [];
    for (let off = 0; off < notes.length;) {
      const nh = Elf64_Nhdr.decode(viewOf(notes), off);
      const nameAt = off + Elf64_Nhdr.size;
      const descAt = nameAt + Math.ceil(nh.n_namesz / 4) * 4;
      parsed.push({ name: notes.subarray(nameAt, nameAt + nh.n_namesz - 1).toString(), type: nh.n_type, desc: notes.subarray(descAt, descAt + nh.n_descsz) });
      off = descAt + Math.ceil(nh.n_descsz / 4) * 4;
    }
    expect(parsed.map((n) => [n.name, n.type])).toEqual([['CORE', NT_PRSTATUS], [VMCOREINFO_NOTE_NAME, 0]]);
    const pr = elf_prstatus.decode(viewOf(parsed[0].desc), 0);
    expect(pr.pr_pid).toBe(pid);
    expect(pr.pr_reg.rip).toBe(0xffffffff80000abcn);
    expect(pr.pr_reg.rsp).toBe(0xffffffff80007f00n);
    expect(Buffer.from(parsed[1].desc).toString('latin1')).toBe(vmcoreinfo);

    // A page's bytes at its offset in the load holding it (direct map, kernel text); no load holds an absent page.
    const at = (load: number, paddr: bigint): Buffer => {
      const off = Number(ph[load].p_offset + paddr - ph[load].p_paddr);
      return bytes.subarray(off, off + PAGE);
    };
    expect(at(5, 0x10000n).equals(Buffer.from(built.pages.get(0x10n)!))).toBe(true);
    expect(at(3, 0x3000n).equals(Buffer.from(built.pages.get(3n)!))).toBe(true);
    expect(at(1, 0x3000n).equals(Buffer.from(built.pages.get(3n)!))).toBe(true);
    for (const absent of [0n, 5n, 7n, 0xfn]) {
      expect(ph.slice(1).some((p) => absent * 4096n >= p.p_paddr && absent * 4096n < p.p_paddr + p.p_memsz), `pfn ${absent}`).toBe(false);
    }
  });
});
