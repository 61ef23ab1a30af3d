import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { needs } from '../../helpers/tools.js';

const READELF = '/usr/bin/readelf';
import { DumpError, UsageError, viewOf } from '../../../src/codec/index.js';
import {
  EI_CLASS, EI_DATA, EI_VERSION, ELFCLASS64, ELFDATA2LSB, EM_X86_64, ET_CORE, EV_CURRENT,
  Elf64_Ehdr, Elf64_Nhdr, Elf64_Phdr, NT_PRSTATUS, PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE,
  VMCOREINFO_NOTE_NAME, VMCORE_CHUNK_SIZE, buildNotes, elf_prstatus,
  user_regs_struct, writeVmcore,
  type ElfPrstatus, type VmcoreLoad, type VmcoreSpec,
} from '../../../src/dump/elf/index.js';

const MiB = 1n << 20n;
const PAGE = 4096n;
const START_KERNEL_MAP = 0xffffffff80000000n;
const PAGE_OFFSET = 0xffff888000000000n;

const VMCOREINFO = 'OSRELEASE=4.19.0-sim\nPAGESIZE=4096\nSYMBOL(init_top_pgt)=ffffffff80001000\n';

/** A deterministic, mostly-zero physical memory: only a few pages hold data. */
function sparseSource(populated: readonly bigint[]): (paddr: bigint, out: Uint8Array) => void {
  const pages = new Set(populated.map((p) => p / PAGE));
  return (paddr, out) => {
    expect(out.length).toBeLessThanOrEqual(VMCORE_CHUNK_SIZE);
    out.fill(0);
    const first = paddr / PAGE;
    const last = (paddr + BigInt(out.length) - 1n) / PAGE;
    for (const pfn of pages) {
      if (pfn < first || pfn > last) continue;
      const start = pfn * PAGE > paddr ? pfn * PAGE : paddr;
      const end = (pfn + 1n) * PAGE < paddr + BigInt(out.length) ? (pfn + 1n) * PAGE : paddr + BigInt(out.length);
      for (let a = start; a < end; a++) out[Number(a - paddr)] = Number((a * 131n + pfn) % 251n) + 1;
    }
  };
}

interface ParsedNote { name: string; type: number; desc: Uint8Array }

function parseNotes(bytes: Uint8Array): ParsedNote[] {
  const out: ParsedNote[] = [];
  const view = viewOf(bytes);
  let off = 0;
  while (off < bytes.length) {
    const nh = Elf64_Nhdr.decode(view, off);
    const nameAt = off + Elf64_Nhdr.size;
    const descAt = nameAt + Math.ceil(nh.n_namesz / 4) * 4;
    out.push({
      name: Buffer.from(bytes.subarray(nameAt, nameAt + nh.n_namesz - 1)).toString('latin1'),
      type: nh.n_type,
      desc: bytes.subarray(descAt, descAt + nh.n_descsz),
    });
    expect(bytes[nameAt + nh.n_namesz - 1]).toBe(0);
    off = descAt + Math.ceil(nh.n_descsz / 4) * 4;
  }
  expect(off).toBe(bytes.length);
  return out;
}

function readAt(fd: number, offset: bigint, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, Number(offset) + done);
    if (n === 0) throw new Error(`short read at ${offset}`);
    done += n;
  }
  return buf;
}

let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'elf-vmcore-')); });
afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }); });

describe('ELF structure codecs', () => {
  it('have the sizes of the C structs', () => {
    expect(Elf64_Ehdr.size).toBe(64);
    expect(Elf64_Phdr.size).toBe(56);
    expect(Elf64_Nhdr.size).toBe(12);
    expect(user_regs_struct.size).toBe(27 * 8);
    expect(elf_prstatus.size).toBe(336);
  });

  it('put elf_prstatus fields at the x86_64 offsets', () => {
    expect(elf_prstatus.offsetOf.pr_cursig).toBe(12);
    expect(elf_prstatus.offsetOf.pr_sigpend).toBe(16);
    expect(elf_prstatus.offsetOf.pr_pid).toBe(32);
    expect(elf_prstatus.offsetOf.pr_utime).toBe(48);
    expect(elf_prstatus.offsetOf.pr_reg).toBe(112);
    expect(user_regs_struct.offsetOf.rip).toBe(16 * 8);
    expect(user_regs_struct.offsetOf.gs).toBe(26 * 8);
    expect(elf_prstatus.offsetOf.pr_fpvalid).toBe(328);
    expect(Elf64_Phdr.offsetOf.p_offset).toBe(8);
    expect(Elf64_Ehdr.offsetOf.e_phoff).toBe(32);
    expect(Elf64_Ehdr.offsetOf.e_phnum).toBe(56);
  });

  it('round-trip', () => {
    const ehdr = { ...Elf64_Ehdr.zero(), e_type: ET_CORE, e_machine: EM_X86_64, e_phoff: 64n, e_phnum: 3 };
    ehdr.e_ident = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    expect(Elf64_Ehdr.fromBytes(Elf64_Ehdr.toBytes(ehdr))).toEqual(ehdr);

    const phdr = {
      p_type: PT_LOAD, p_flags: PF_R | PF_X, p_offset: 0x1000n, p_vaddr: START_KERNEL_MAP,
      p_paddr: 0x123000n, p_filesz: 0xfffff000n, p_memsz: 0x1_0000_0000n, p_align: 0n,
    };
    expect(Elf64_Phdr.fromBytes(Elf64_Phdr.toBytes(phdr))).toEqual(phdr);

    const nhdr = { n_namesz: 11, n_descsz: 0xabcdef, n_type: NT_PRSTATUS };
    expect(Elf64_Nhdr.fromBytes(Elf64_Nhdr.toBytes(nhdr))).toEqual(nhdr);

    const pr: ElfPrstatus = elf_prstatus.zero();
    pr.pr_info = { si_signo: 11, si_code: -6, si_errno: 5 };
    pr.pr_cursig = 11;
    pr.pr_sigpend = 0x8000000000000001n;
    pr.pr_pid = 4242;
    pr.pr_sid = -1;
    pr.pr_stime = { tv_sec: 12n, tv_usec: -1n };
    let k = 1n;
    for (const name of Object.keys(pr.pr_reg) as Array<keyof ElfPrstatus['pr_reg']>) pr.pr_reg[name] = k++ * 0x1111n;
    pr.pr_reg.rip = 0xffffffff81000000n;
    pr.pr_fpvalid = 1;
    const raw = elf_prstatus.toBytes(pr);
    expect(raw.length).toBe(336);
    expect(elf_prstatus.fromBytes(raw)).toEqual(pr);
    expect(viewOf(raw).getBigUint64(112 + 16 * 8, true)).toBe(0xffffffff81000000n);
  });
});

describe('buildNotes', () => {
  it('writes one CORE note per CPU, then VMCOREINFO with n_type 0 and no NUL', () => {
    const notes = buildNotes({
      vmcoreinfo: VMCOREINFO,
      prstatus: [{ pid: 0, regs: { rip: START_KERNEL_MAP + 0x1000n, rsp: 0x7ff0n } }, { pid: 1, regs: {} }],
    });
    expect(notes.length % 4).toBe(0);
    const parsed = parseNotes(notes);
    expect(parsed.map((n) => [n.name, n.type])).toEqual([['CORE', NT_PRSTATUS], ['CORE', NT_PRSTATUS], [VMCOREINFO_NOTE_NAME, 0]]);
    const pr0 = elf_prstatus.fromBytes(parsed[0].desc);
    expect(parsed[0].desc.length).toBe(336);
    expect(pr0.pr_reg.rip).toBe(START_KERNEL_MAP + 0x1000n);
    expect(pr0.pr_reg.rsp).toBe(0x7ff0n);
    expect(pr0.pr_reg.rax).toBe(0n);
    expect(elf_prstatus.fromBytes(parsed[1].desc).pr_pid).toBe(1);
    expect(Buffer.from(parsed[2].desc).toString('latin1')).toBe(VMCOREINFO);
    // namesz counts the NUL: "VMCOREINFO\0" is 11 bytes.
    const vmcoreinfoAt = 2 * (12 + 8 + 336);
    expect(Elf64_Nhdr.decode(viewOf(notes), vmcoreinfoAt).n_namesz).toBe(11);
  });

  it('rejects an unknown register', () => {
    expect(() => buildNotes({ vmcoreinfo: '', prstatus: [{ pid: 1, regs: { xyz: 1n } as never }] }))
      .toThrow(UsageError);
  });
});

describe('writeVmcore', () => {
  const populated = [0x1000n, 0x3000n, 0x3fffn, 0x223000n, 0x1234567n, 64n * MiB - 1n];
  const loads: VmcoreLoad[] = [
    { vaddr: START_KERNEL_MAP, paddr: 0n, size: 64n * MiB },
    { vaddr: PAGE_OFFSET + 0x200000n, paddr: 0x200000n, size: 0x43000n },
  ];

  it('writes a sparse vmcore that parses back field by field', () => {
    const file = path.join(dir, 'vmcore');
    const readPhys = sparseSource(populated);
    const progress: Array<[bigint, bigint]> = [];
    const spec: VmcoreSpec = {
      loads, vmcoreinfo: VMCOREINFO, readPhys,
      prstatus: [{ pid: 7, regs: { rip: START_KERNEL_MAP + 0x1000n } }],
      onProgress: (done, total) => { progress.push([done, total]); },
    };
    const result = writeVmcore(file, spec);

    const st = fs.statSync(file);
    expect(BigInt(st.size)).toBe(result.bytes);
    expect(st.mode & 0o777).toBe(0o600);
    expect(result.bytes).toBe(result.dataOffset + 64n * MiB + 0x43000n);
    expect(result.dataOffset % PAGE).toBe(0n);
    // Only a handful of pages hold data: the file must be mostly holes.
    expect(st.blocks * 512).toBeLessThan(st.size / 16);
    expect(st.blocks * 512).toBeLessThan(Number(MiB));
    expect(fs.readdirSync(dir)).toEqual(['vmcore']);

    const totalData = 64n * MiB + 0x43000n;
    expect(progress.at(-1)).toEqual([totalData, totalData]);
    for (let i = 1; i < progress.length; i++) expect(progress[i][0]).toBeGreaterThan(progress[i - 1][0]);

    const fd = fs.openSync(file, 'r');
    try {
      const ehdr = Elf64_Ehdr.fromBytes(readAt(fd, 0n, Elf64_Ehdr.size));
      expect([...ehdr.e_ident.subarray(0, 4)]).toEqual([0x7f, 0x45, 0x4c, 0x46]);
      expect(ehdr.e_ident[EI_CLASS]).toBe(ELFCLASS64);
      expect(ehdr.e_ident[EI_DATA]).toBe(ELFDATA2LSB);
      expect(ehdr.e_ident[EI_VERSION]).toBe(EV_CURRENT);
      expect(ehdr.e_type).toBe(ET_CORE);
      expect(ehdr.e_machine).toBe(EM_X86_64);
      expect(ehdr.e_version).toBe(EV_CURRENT);
      expect(ehdr.e_phoff).toBe(64n);
      expect(ehdr.e_ehsize).toBe(64);
      expect(ehdr.e_phentsize).toBe(56);
      expect(ehdr.e_phnum).toBe(3);
      expect([ehdr.e_shoff, ehdr.e_shnum, ehdr.e_shentsize]).toEqual([0n, 0, 0]);

      const phdrs = Array.from({ length: ehdr.e_phnum }, (_, i) =>
        Elf64_Phdr.fromBytes(readAt(fd, ehdr.e_phoff + BigInt(i * Elf64_Phdr.size), Elf64_Phdr.size)));
      expect(phdrs[0].p_type).toBe(PT_NOTE);
      expect(phdrs[0].p_offset).toBe(64n + 3n * 56n);
      expect(phdrs[0].p_filesz).toBe(phdrs[0].p_memsz);

      const noteBytes = readAt(fd, phdrs[0].p_offset, Number(phdrs[0].p_filesz));
      expect(noteBytes).toEqual(Buffer.from(buildNotes(spec)));
      const notes = parseNotes(noteBytes);
      expect(notes.map((n) => n.name)).toEqual(['CORE', 'VMCOREINFO']);
      expect(notes[1].type).toBe(0);
      expect(Buffer.from(notes[1].desc).toString('utf8')).toBe(VMCOREINFO);
      const pr = elf_prstatus.fromBytes(notes[0].desc);
      expect(pr.pr_pid).toBe(7);
      expect(pr.pr_reg.rip).toBe(START_KERNEL_MAP + 0x1000n);

      let expectOffset = result.dataOffset;
      expect(expectOffset).toBe((phdrs[0].p_offset + phdrs[0].p_filesz + PAGE - 1n) / PAGE * PAGE);
      loads.forEach((load, i) => {
        const ph = phdrs[i + 1];
        expect(ph.p_type).toBe(PT_LOAD);
        expect(ph.p_flags).toBe(PF_R | PF_W | PF_X);
        expect(ph.p_align).toBe(0n);
        expect(ph.p_vaddr).toBe(load.vaddr);
        expect(ph.p_paddr).toBe(load.paddr);
        expect(ph.p_filesz).toBe(load.size);
        expect(ph.p_memsz).toBe(load.size);
        expect(ph.p_offset).toBe(expectOffset);
        expect(ph.p_offset % PAGE).toBe(0n);
        // Notes lie before the first load's data.
        expect(ph.p_offset).toBeGreaterThanOrEqual(phdrs[0].p_offset + phdrs[0].p_filesz);
        expectOffset += load.size;

        const want = Buffer.alloc(VMCORE_CHUNK_SIZE);
        for (let at = 0n; at < load.size; at += BigInt(VMCORE_CHUNK_SIZE)) {
          const n = Number(load.size - at < BigInt(VMCORE_CHUNK_SIZE) ? load.size - at : BigInt(VMCORE_CHUNK_SIZE));
          readPhys(load.paddr + at, want.subarray(0, n));
          expect(readAt(fd, ph.p_offset + at, n).equals(want.subarray(0, n))).toBe(true);
        }
      });
      expect(expectOffset).toBe(BigInt(st.size));
      // Spot-check that the populated bytes really are there (not all holes).
      expect(readAt(fd, result.dataOffset + 0x3fffn, 1)[0]).not.toBe(0);
      expect(readAt(fd, result.dataOffset + 64n * MiB - 1n, 1)[0]).not.toBe(0);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('replaces an existing regular file', () => {
    const file = path.join(dir, 'vmcore');
    fs.writeFileSync(file, 'old contents', { mode: 0o644 });
    const r = writeVmcore(file, { loads: [{ vaddr: START_KERNEL_MAP, paddr: 0n, size: PAGE }], vmcoreinfo: '', readPhys: (_p, out) => out.fill(0xaa) });
    expect(BigInt(fs.statSync(file).size)).toBe(r.bytes);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(file).subarray(Number(r.dataOffset)).every((b) => b === 0xaa)).toBe(true);
  });

  needs(READELF).it('is listed by readelf -l with NOTE first and the loads at the right addresses', () => {
    const file = path.join(dir, 'vmcore');
    const small: VmcoreLoad[] = [
      { vaddr: START_KERNEL_MAP, paddr: 0n, size: 2n * MiB },
      { vaddr: PAGE_OFFSET, paddr: 0n, size: 2n * MiB },
    ];
    const r = writeVmcore(file, {
      loads: small, vmcoreinfo: VMCOREINFO, readPhys: sparseSource([0x1000n]),
      prstatus: [{ pid: 1, regs: {} }],
    });
    const out = execFileSync(READELF, ['-l', '-W', file], { encoding: 'utf8', timeout: 30_000 });
    const rows = out.split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter((cols) => cols[0] === 'NOTE' || cols[0] === 'LOAD');
    expect(rows.map((c) => c[0])).toEqual(['NOTE', 'LOAD', 'LOAD']);
    const hex16 = (v: bigint) => `0x${v.toString(16).padStart(16, '0')}`;
    small.forEach((load, i) => {
      const [, offset, vaddr, paddr, filesz, memsz, flags, alignCol] = rows[i + 1];
      expect(BigInt(offset)).toBe(r.dataOffset + BigInt(i) * 2n * MiB);
      expect(vaddr).toBe(hex16(load.vaddr));
      expect(paddr).toBe(hex16(load.paddr));
      expect(BigInt(filesz)).toBe(load.size);
      expect(BigInt(memsz)).toBe(load.size);
      expect(flags).toBe('RWE');
      expect(alignCol).toBe('0');
    });
    const notes = execFileSync(READELF, ['-n', '-W', file], { encoding: 'utf8', timeout: 30_000 });
    expect(notes).toMatch(/CORE\s+0x00000150\s+NT_PRSTATUS/);
    expect(notes).toContain('VMCOREINFO');
  });

  it('fails with a one-line DumpError when the directory does not exist, leaving nothing behind', () => {
    const missing = path.join(dir, 'no-such-dir');
    const file = path.join(missing, 'vmcore');
    let err: unknown;
    try {
      writeVmcore(file, { loads, vmcoreinfo: VMCOREINFO, readPhys: sparseSource([]) });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DumpError);
    expect(['NOINPUT', 'IO']).toContain((err as DumpError).code);
    expect((err as DumpError).message).not.toContain('\n');
    expect((err as DumpError).message).toContain(file);
    expect(fs.existsSync(missing)).toBe(false);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('removes the temporary file and keeps the old output when reading RAM fails', () => {
    const file = path.join(dir, 'vmcore');
    fs.writeFileSync(file, 'previous dump');
    const failAt = 5n * MiB;
    let err: unknown;
    try {
      writeVmcore(file, {
        loads, vmcoreinfo: VMCOREINFO,
        readPhys: (paddr, out) => {
          if (paddr >= failAt) throw new DumpError('FAULT', `no RAM at 0x${paddr.toString(16)}`, { address: paddr });
          out.fill(1);
        },
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DumpError);
    expect((err as DumpError).code).toBe('FAULT');
    expect((err as DumpError).message).toMatch(/^writing .*vmcore: reading RAM at 0x500000 .*: no RAM at 0x500000$/);
    expect(fs.readdirSync(dir)).toEqual(['vmcore']);
    expect(fs.readFileSync(file, 'utf8')).toBe('previous dump');
  });

  it('refuses an output path that is a directory', () => {
    const file = path.join(dir, 'out');
    fs.mkdirSync(file);
    expect(() => writeVmcore(file, { loads, vmcoreinfo: '', readPhys: sparseSource([]) }))
      .toThrow(expect.objectContaining({ code: 'IO', message: expect.stringContaining('a directory') }));
    expect(fs.readdirSync(dir)).toEqual(['out']);
  });

  it('exports a 4 GiB all-zero machine as a sparse file, reading at most 1 MiB at a time', () => {
    const file = path.join(dir, 'vmcore');
    const size = 4096n * MiB;
    let calls = 0;
    const r = writeVmcore(file, {
      loads: [{ vaddr: PAGE_OFFSET, paddr: 0n, size }],
      vmcoreinfo: VMCOREINFO,
      readPhys: (_paddr, out) => {
        calls++;
        if (out.length > VMCORE_CHUNK_SIZE) throw new Error(`read of ${out.length} bytes`);
        out.fill(0);
      },
    });
    expect(calls).toBe(4096);
    const st = fs.statSync(file);
    expect(BigInt(st.size)).toBe(r.dataOffset + size);
    expect(st.blocks * 512).toBeLessThanOrEqual(64 * 1024);
  }, 60_000);

  it('rejects a load whose addresses wrap past 2^64', () => {
    const file = path.join(dir, 'v');
    expect(() => writeVmcore(file, {
      loads: [{ vaddr: START_KERNEL_MAP, paddr: 0n, size: 4096n * MiB }], vmcoreinfo: '', readPhys: () => {},
    })).toThrow(/loads\[0\]: vaddr 0xffffffff80000000 \+ size 0x100000000 wraps past 2\^64/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('rejects an empty load list', () => {
    expect(() => writeVmcore(path.join(dir, 'v'), { loads: [], vmcoreinfo: '', readPhys: () => {} }))
      .toThrow(UsageError);
  });
});
