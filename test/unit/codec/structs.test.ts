import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  cstring, DumpError, Elf64_Ehdr, Elf64_Nhdr, Elf64_Phdr, Elf64_Shdr, elf_prstatus, formatSize, parseSize,
  TruncatedError, u32, user_regs_struct, viewOf, type StructLayout,
} from '../../../src/codec/index.js';
import { free_area } from '../../../src/kernel/structs/free_area.js';
import { list_head } from '../../../src/kernel/structs/list_head.js';
import { new_utsname, uts_namespace, type NewUtsname } from '../../../src/kernel/structs/new_utsname.js';
import { page, type Page } from '../../../src/kernel/structs/page.js';
import { printk_log, type PrintkLog } from '../../../src/kernel/structs/printk_log.js';
import { pt_regs, type PtRegs } from '../../../src/kernel/structs/pt_regs.js';

const FC_SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : 0x1cd;
const U64_MAX = (1n << 64n) - 1n;

/**
 * C layouts as the compiler lays them out on x86_64 (offsetof / sizeof),
 * written from the kernel and glibc headers, not from the codecs.
 */
const C_LAYOUTS: Array<{ struct: StructLayout; sizeof: number; offsets: Record<string, number>; header: string }> = [
  {
    // include/linux/mm_types.h v5.4: flags; union { struct { lru; mapping; index; private } }; _mapcount; _refcount; mem_cgroup
    struct: page, sizeof: 64, header: 'include/linux/mm_types.h',
    offsets: { flags: 0, lru: 8, mapping: 24, index: 32, private: 40, _mapcount: 48, _refcount: 52, mem_cgroup: 56 },
  },
  {
    // kernel/printk/printk.c v3.5..v5.9: u64 ts_nsec; u16 len, text_len, dict_len; u8 facility; u8 flags:5, level:3
    struct: printk_log, sizeof: 16, header: 'kernel/printk/printk.c',
    offsets: { ts_nsec: 0, len: 8, text_len: 10, dict_len: 12, facility: 14, flags_level: 15 },
  },
  {
    // include/uapi/linux/utsname.h: six char[__NEW_UTS_LEN + 1 = 65]
    struct: new_utsname, sizeof: 6 * 65, header: 'include/uapi/linux/utsname.h',
    offsets: { sysname: 0, nodename: 65, release: 130, version: 195, machine: 260, domainname: 325 },
  },
  {
    // arch/x86/include/asm/ptrace.h: 21 unsigned longs
    struct: pt_regs, sizeof: 168, header: 'arch/x86/include/asm/ptrace.h',
    offsets: { r15: 0, bp: 32, bx: 40, r11: 48, r8: 72, ax: 80, di: 112, orig_ax: 120, ip: 128, cs: 136, flags: 144, sp: 152, ss: 160 },
  },
  { struct: list_head, sizeof: 16, header: 'include/linux/types.h', offsets: { next: 0, prev: 8 } },
  // One migrate type: list_head free_list; unsigned long nr_free.
  { struct: free_area, sizeof: 24, header: 'include/linux/mmzone.h', offsets: { free_list: 0, nr_free: 16 } },
  {
    struct: Elf64_Ehdr, sizeof: 64, header: '<elf.h>',
    offsets: { e_ident: 0, e_type: 16, e_machine: 18, e_version: 20, e_entry: 24, e_phoff: 32, e_shoff: 40, e_flags: 48, e_ehsize: 52, e_phentsize: 54, e_phnum: 56, e_shentsize: 58, e_shnum: 60, e_shstrndx: 62 },
  },
  {
    struct: Elf64_Phdr, sizeof: 56, header: '<elf.h>',
    offsets: { p_type: 0, p_flags: 4, p_offset: 8, p_vaddr: 16, p_paddr: 24, p_filesz: 32, p_memsz: 40, p_align: 48 },
  },
  { struct: Elf64_Nhdr, sizeof: 12, header: '<elf.h>', offsets: { n_namesz: 0, n_descsz: 4, n_type: 8 } },
  {
    struct: Elf64_Shdr, sizeof: 64, header: '<elf.h>',
    offsets: { sh_name: 0, sh_type: 4, sh_flags: 8, sh_addr: 16, sh_offset: 24, sh_size: 32, sh_link: 40, sh_info: 44, sh_addralign: 48, sh_entsize: 56 },
  },
  { struct: user_regs_struct, sizeof: 27 * 8, header: 'arch/x86/include/asm/user_64.h', offsets: { r15: 0, orig_rax: 120, rip: 128, rsp: 152, gs: 208 } },
  {
    // include/linux/elfcore.h on x86_64 (what crash and gdb read from NT_PRSTATUS)
    struct: elf_prstatus, sizeof: 336, header: 'include/linux/elfcore.h',
    offsets: { pr_info: 0, pr_cursig: 12, pr_sigpend: 16, pr_sighold: 24, pr_pid: 32, pr_ppid: 36, pr_pgrp: 40, pr_sid: 44, pr_utime: 48, pr_stime: 64, pr_cutime: 80, pr_cstime: 96, pr_reg: 112, pr_fpvalid: 328 },
  },
];

function offsetOf(struct: StructLayout, field: string): number | undefined {
  return struct.fields.find((f) => f.name === field)?.offset;
}

describe('struct codecs match the C layout', () => {
  it.each(C_LAYOUTS.map((c) => [c.struct.name, c] as const))('%s: size and field offsets', (_name, c) => {
    expect(c.struct.size).toBe(c.sizeof);
    for (const [field, off] of Object.entries(c.offsets)) {
      expect({ field, offset: offsetOf(c.struct, field) }).toEqual({ field, offset: off });
    }
  });

  it('u32 fields are little-endian whatever the host', () => {
    const b = new Uint8Array(4);
    u32.set(viewOf(b), 0, 0x11223344);
    expect(Array.from(b)).toEqual([0x44, 0x33, 0x22, 0x11]);
  });

  it('uts_namespace.name is at offset 4 (OFFSET(uts_namespace.name) in VMCOREINFO)', () => {
    expect(uts_namespace.offsetOf.name).toBe(4);
    expect(offsetOf(uts_namespace, 'name')).toBe(4);
  });

  it('the fields of every struct tile it exactly (no overlaps, no hidden padding)', () => {
    for (const c of C_LAYOUTS) {
      let at = 0;
      for (const f of c.struct.fields) {
        expect({ struct: c.struct.name, field: f.name, offset: f.offset }).toEqual({ struct: c.struct.name, field: f.name, offset: at });
        at += f.size;
      }
      expect(at).toBe(c.sizeof);
    }
  });
});

const u64Arb = fc.bigInt({ min: 0n, max: U64_MAX });
const i32Arb = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });

const pageArb: fc.Arbitrary<Page> = fc.record({
  flags: u64Arb,
  lru: fc.record({ next: u64Arb, prev: u64Arb }),
  mapping: u64Arb,
  index: u64Arb,
  private: u64Arb,
  _mapcount: i32Arb,
  _refcount: i32Arb,
  mem_cgroup: u64Arb,
});

/** Little-endian u64 read by hand, independent of the codec's field types. */
function le64(b: Uint8Array, at: number): bigint {
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(b[at + i]);
  return v;
}
function le32s(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24));
}

describe('struct page round trip', () => {
  it('decode(encode(v)) == v over the full u64 and i32 ranges', () => {
    fc.assert(fc.property(pageArb, (v) => {
      expect(page.fromBytes(page.toBytes(v))).toEqual(v);
    }), { seed: FC_SEED, numRuns: 300 });
  });

  it('extreme values survive: 0, 2^64-1, INT32_MIN, INT32_MAX, the buddy marker', () => {
    const v: Page = {
      flags: U64_MAX, lru: { next: 0n, prev: 0xffff888000000000n }, mapping: 1n, index: 1n << 63n,
      private: 10n, _mapcount: -129, _refcount: -(2 ** 31), mem_cgroup: 0xdead000000000100n,
    };
    expect(page.fromBytes(page.toBytes(v))).toEqual(v);
    expect(page.fromBytes(page.toBytes({ ...v, _mapcount: 2 ** 31 - 1 }))._mapcount).toBe(2 ** 31 - 1);
  });

  it('encodes little-endian at the C offsets, also at an offset inside a subarray of a larger buffer', () => {
    fc.assert(fc.property(pageArb, fc.integer({ min: 0, max: 37 }), fc.integer({ min: 0, max: 11 }), (v, lead, at) => {
      const backing = new Uint8Array(lead + at + page.size + 5).fill(0xee);
      const sub = backing.subarray(lead); // a view whose byteOffset is not 0
      const end = page.encode(v, viewOf(sub), at);
      expect(end).toBe(at + page.size);
      const b = sub.subarray(at, at + page.size);
      expect(le64(b, 0)).toBe(v.flags);
      expect(le64(b, 8)).toBe(v.lru.next);
      expect(le64(b, 16)).toBe(v.lru.prev);
      expect(le64(b, 24)).toBe(v.mapping);
      expect(le64(b, 32)).toBe(v.index);
      expect(le64(b, 40)).toBe(v.private);
      expect(le32s(b, 48)).toBe(v._mapcount);
      expect(le32s(b, 52)).toBe(v._refcount);
      // Bytes outside the struct are untouched.
      expect(backing.subarray(0, lead + at).every((x) => x === 0xee)).toBe(true);
      expect(backing.subarray(lead + at + page.size).every((x) => x === 0xee)).toBe(true);
      expect(page.decode(viewOf(sub), at)).toEqual(v);
    }), { seed: FC_SEED, numRuns: 100 });
  });
});

describe('other codecs round trip', () => {
  const u16Arb = fc.integer({ min: 0, max: 0xffff });
  const u8Arb = fc.integer({ min: 0, max: 0xff });
  /** latin1 text without NUL that fits a char[n] with its terminator. */
  const cstr = (n: number): fc.Arbitrary<string> =>
    fc.array(fc.integer({ min: 1, max: 255 }), { maxLength: n - 1 }).map((cs) => String.fromCharCode(...cs));

  it('printk_log', () => {
    const arb: fc.Arbitrary<PrintkLog> = fc.record({
      ts_nsec: u64Arb, len: u16Arb, text_len: u16Arb, dict_len: u16Arb, facility: u8Arb, flags_level: u8Arb,
    });
    fc.assert(fc.property(arb, (v) => { expect(printk_log.fromBytes(printk_log.toBytes(v))).toEqual(v); }), { seed: FC_SEED });
  });

  it('pt_regs', () => {
    const names = pt_regs.fields.map((f) => f.name);
    const arb = fc.array(u64Arb, { minLength: names.length, maxLength: names.length })
      .map((xs) => Object.fromEntries(names.map((n, i) => [n, xs[i]])) as PtRegs);
    fc.assert(fc.property(arb, (v) => { expect(pt_regs.fromBytes(pt_regs.toBytes(v))).toEqual(v); }), { seed: FC_SEED });
  });

  it('new_utsname with any latin1 text of up to 64 characters', () => {
    const arb: fc.Arbitrary<NewUtsname> = fc.record({
      sysname: cstr(65), nodename: cstr(65), release: cstr(65), version: cstr(65), machine: cstr(65), domainname: cstr(65),
    });
    fc.assert(fc.property(arb, (v) => { expect(new_utsname.fromBytes(new_utsname.toBytes(v))).toEqual(v); }), { seed: FC_SEED });
  });

  it('list_head and free_area', () => {
    fc.assert(fc.property(u64Arb, u64Arb, u64Arb, (next, prev, nr_free) => {
      expect(list_head.fromBytes(list_head.toBytes({ next, prev }))).toEqual({ next, prev });
      const fa = { free_list: { next, prev }, nr_free };
      expect(free_area.fromBytes(free_area.toBytes(fa))).toEqual(fa);
    }), { seed: FC_SEED });
  });
});

describe('decoding a short buffer', () => {
  // struct page fields by C offset and size, from mm_types.h.
  const PAGE_FIELDS: Array<[string, number, number]> = [
    ['flags', 0, 8], ['lru', 8, 16], ['mapping', 24, 8], ['index', 32, 8], ['private', 40, 8],
    ['_mapcount', 48, 4], ['_refcount', 52, 4], ['mem_cgroup', 56, 8],
  ];
  const firstShort = (have: number): string => PAGE_FIELDS.find(([, off, size]) => off + size > have)![0];

  function truncation(fn: () => unknown): TruncatedError {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(TruncatedError);
      return e as TruncatedError;
    }
    throw new Error('expected a TruncatedError, nothing was thrown');
  }

  it.each([
    [0, 'flags'], [7, 'flags'], [8, 'lru'], [23, 'lru'], [24, 'mapping'], [30, 'mapping'],
    [47, 'private'], [48, '_mapcount'], [51, '_mapcount'], [55, '_refcount'], [63, 'mem_cgroup'],
  ])('struct page from %i bytes fails at %s', (have, field) => {
    const err = truncation(() => page.decode(viewOf(new Uint8Array(have))));
    expect(err.code).toBe('TRUNCATED');
    expect(err.where.struct).toBe('page');
    expect(err.where.field).toBe(field);
  });

  it('names the first field that ran short for every length and start offset', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 200 }), (len, offset) => {
      fc.pre(offset + page.size > len);
      const err = truncation(() => page.decode(viewOf(new Uint8Array(len)), offset));
      expect(err.where.field).toBe(firstShort(len - offset));
      expect(err.where.offset).toBe(offset + PAGE_FIELDS.find(([n]) => n === err.where.field)![1]);
    }), { seed: FC_SEED, numRuns: 300 });
  });

  it('a subarray view is bounded by its own length, not by its backing buffer', () => {
    const backing = new Uint8Array(4096);
    const sub = backing.subarray(100, 100 + 20); // 20 bytes: flags fits, lru does not
    expect(truncation(() => page.decode(viewOf(sub))).where.field).toBe('lru');
  });

  it('printk_log from 11 bytes fails at text_len', () => {
    const err = truncation(() => printk_log.decode(viewOf(new Uint8Array(11))));
    expect(err.where).toMatchObject({ struct: 'printk_log', field: 'text_len', offset: 10 });
  });

  it('encoding into a short buffer is refused before writing', () => {
    const buf = new Uint8Array(page.size - 1).fill(0x5a);
    expect(() => page.encode(page.zero(), viewOf(buf))).toThrow(TruncatedError);
    expect(buf.every((b) => b === 0x5a)).toBe(true);
  });
});

describe('cstring(n)', () => {
  const field = cstring(8);
  const enc = (s: string, fill = 0xff): Uint8Array => {
    const b = new Uint8Array(8).fill(fill);
    field.set(viewOf(b), 0, s);
    return b;
  };

  it('truncates to n-1 bytes so the terminating NUL always fits', () => {
    expect(Array.from(enc('abcdefghij'))).toEqual([0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0]);
    expect(field.get(viewOf(enc('abcdefghij')), 0)).toBe('abcdefg');
    expect(Array.from(enc('abcdefgh'))).toEqual([0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0]);
  });

  it('NUL-pads the rest of the field, overwriting what was there', () => {
    expect(Array.from(enc('ab'))).toEqual([0x61, 0x62, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(enc(''))).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('decodes up to the first NUL, and all n bytes when there is none', () => {
    expect(field.get(viewOf(Uint8Array.from([0x68, 0x69, 0, 0x78, 0x79, 0, 0, 0])), 0)).toBe('hi');
    expect(field.get(viewOf(Uint8Array.from([0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48])), 0)).toBe('ABCDEFGH');
  });

  it('writes at the offset inside a subarray and nowhere else', () => {
    const backing = new Uint8Array(32).fill(0xcc);
    const sub = backing.subarray(5, 25);
    field.set(viewOf(sub), 3, 'xyz');
    expect(Array.from(backing.subarray(8, 16))).toEqual([0x78, 0x79, 0x7a, 0, 0, 0, 0, 0]);
    expect(backing.subarray(0, 8).every((b) => b === 0xcc)).toBe(true);
    expect(backing.subarray(16).every((b) => b === 0xcc)).toBe(true);
  });

  it('the release of a uts name keeps 64 characters of a longer string', () => {
    const long = 'r'.repeat(80);
    const v = new_utsname.fromBytes(new_utsname.toBytes({
      sysname: 'Linux', nodename: 'n', release: long, version: '#1', machine: 'x86_64', domainname: '(none)',
    }));
    expect(v.release).toBe('r'.repeat(64));
    expect(v.version).toBe('#1'); // the neighbour field is intact
  });
});

describe('parseSize and formatSize', () => {
  it.each([
    ['16M', 16n << 20n], ['1G', 1n << 30n], ['0x1000', 4096n], ['4k', 4096n], ['4096', 4096n],
    ['512m', 512n << 20n], ['2T', 2n << 40n], ['64MiB', 64n << 20n], ['0x4000000', 64n << 20n],
  ])('parses %s', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['abc', '1X', '', '  ', 'M', '1.5G', '-1M', '0x', '16 M M'])('rejects %j with a USAGE error', (text) => {
    let err: unknown;
    try { parseSize(text); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(DumpError);
    expect((err as DumpError).code).toBe('USAGE');
  });

  it.each([
    [1n << 30n, '1G'], [512n << 20n, '512M'], [1536n << 20n, '1536M'], [4096n, '4K'], [4097n, '4097'],
    [0n, '0'], [3n << 40n, '3T'], [(1n << 30n) + (1n << 20n), '1025M'],
  ])('formats %s as %s', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });

  it('parseSize(formatSize(x)) == x', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 1n << 44n }), (x) => {
      expect(parseSize(formatSize(x))).toBe(x);
    }), { seed: FC_SEED, numRuns: 300 });
  });

});
