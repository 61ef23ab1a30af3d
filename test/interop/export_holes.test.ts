/**
 * `lkcd export --elf` of a TRUNCATED dump leaves every page the dump does
 * not hold out of every PT_LOAD (issue 8, item 5), and real tools see
 * exactly that: gdb cannot read a page the dump does not hold (where it
 * used to read zeros) and reads every held page as RAM had it before the
 * panic; libkdumpfile (on the ELF file) reads held pages as RAM had them
 * and finds no data for the others; vmcore-dmesg prints the crashed
 * kernel's log. The truth is RAM just before the panic.
 *
 * The dump: a 16M idle machine, ALL_RAM with no compression, which cannot
 * fit in the RAM it describes, so stage 1 drops the unused pass.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAGE_SIZE_N } from '../../src/machine/index.js';
import { PAGE_OFFSET } from '../../src/kernel/index.js';
import { Elf64_Ehdr, Elf64_Phdr, PT_LOAD, viewOf } from '../../src/codec/index.js';
import { DUMP_COMPRESS_NONE, DUMP_LEVEL_ALL_RAM, openLkcdFile } from '../../src/dump/index.js';
import { hashOf, pageHash } from '../helpers/ramdiff.js';
import { findTool, needs, runTool } from '../helpers/tools.js';
import { cleanFailure, dumpDirOf, ensureBuilt, ok, run, runPipeline, type SavedScenario } from '../helpers/lkcd.js';

const MiB = 1n << 20n;
const PYTHON = '/usr/bin/python3';
const TOOL_SECONDS = 120;
const DUMP_TRUNCATED = 3;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-export-holes-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

let r: SavedScenario;
let vmcore: string;
let exportLine: string;
let held: bigint[];
/** Frames of RAM the dump does not hold, spread over RAM. */
let absent: bigint[];
/** Held frames to read, spread over RAM. */
let sample: bigint[];

beforeAll(() => {
  ensureBuilt();
  r = runPipeline(path.join(tmp, 'truncated'), { mem: 16n * MiB, profile: 'idle', seed: 91, level: DUMP_LEVEL_ALL_RAM, compress: DUMP_COMPRESS_NONE }, 'export holes panic');
  const file = path.join(dumpDirOf(r.dir), String(r.n), `dump.${r.n}`);
  const d = openLkcdFile(file);
  try {
    expect(d.attrs['dump.truncated']).toBe(true);
    held = [...d.pages()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  } finally {
    d.close();
  }
  const present = new Set(held);
  const all = [...Array(Number(r.truth.snap.maxPfn)).keys()].map(BigInt);
  const missing = all.filter((p) => !present.has(p) && p >= 0x100n);
  absent = missing.filter((_, i) => i % Math.max(1, Math.floor(missing.length / 16)) === 0).slice(0, 16);
  const heldHigh = held.filter((p) => p >= 0x100n);
  sample = heldHigh.filter((_, i) => i % Math.max(1, Math.floor(heldHigh.length / 32)) === 0);
  vmcore = path.join(tmp, 'truncated.vmcore');
  exportLine = ok(run('lkcd', r.dir, ['export', String(r.n), '--elf', '-o', vmcore])).trimEnd();
});

describe('the export of a TRUNCATED dump', () => {
  it('says how many frames it left out: every frame of RAM the dump does not hold', () => {
    const m = /: (\d+) bytes, (\d+) PT_LOADs; (\d+) of the (\d+) frames of RAM are not in the dump and were left out \(holes between the loads\)$/.exec(exportLine);
    expect(m, exportLine).not.toBeNull();
    expect(Number(m![4])).toBe(Number(r.truth.snap.maxPfn));
    expect(Number(m![3])).toBe(Number(r.truth.snap.maxPfn) - held.length);
    expect(Number(m![3])).toBeGreaterThan(1000);
  });

  it('no PT_LOAD covers a page the dump does not hold; every held page is in the direct-map loads', () => {
    const bytes = fs.readFileSync(vmcore);
    const eh = Elf64_Ehdr.decode(viewOf(bytes), 0);
    const loads = Array.from({ length: eh.e_phnum }, (_, i) => Elf64_Phdr.decode(viewOf(bytes), Number(eh.e_phoff) + i * Elf64_Phdr.size))
      .filter((p) => p.p_type === PT_LOAD);
    const present = new Set(held);
    const covered = new Set<bigint>();
    for (const p of loads) {
      expect(p.p_align).toBe(0n);
      for (let pa = p.p_paddr; pa < p.p_paddr + p.p_memsz; pa += PAGE_SIZE_N) {
        expect(present.has(pa / PAGE_SIZE_N), `PT_LOAD at paddr 0x${p.p_paddr.toString(16)} covers 0x${pa.toString(16)}`).toBe(true);
        if (p.p_vaddr >= PAGE_OFFSET && p.p_vaddr < 0xffffc88000000000n) covered.add(pa / PAGE_SIZE_N);
      }
    }
    expect(covered.size).toBe(held.length);
  });

  it('a degraded save is not a degraded export: lkcd verify of the dump exits 3, TRUNCATED', () => {
    cleanFailure(run('lkcd', r.dir, ['verify', String(r.n)]), 'lkcd', DUMP_TRUNCATED, 'TRUNCATED');
  });
});

const gdbNeeds = needs('gdb');

describe(`gdb on the export${gdbNeeds.reason}`, () => {
  /** `x/4gx` of the direct-map address of each pfn, one gdb run. */
  function gdbRead(pfns: bigint[], status: number): string[] {
    const args = ['-batch', '-nx', '-ex', 'set pagination off'];
    for (const p of pfns) args.push('-ex', `x/4gx 0x${(PAGE_OFFSET + p * PAGE_SIZE_N).toString(16)}`);
    const out = runTool('gdb', [...args, '-c', vmcore], TOOL_SECONDS);
    // gdb -batch exits 1 when its last command failed.
    expect(out.status, out.stderr).toBe(status);
    return `${out.stdout}\n${out.stderr}`.split('\n');
  }

  it.skipIf(gdbNeeds.missing.length > 0)('cannot read a page the dump does not hold', () => {
    const text = gdbRead(absent, 1).join('\n');
    for (const p of absent) expect(text).toContain(`Cannot access memory at address 0x${(PAGE_OFFSET + p * PAGE_SIZE_N).toString(16)}`);
  });

  it.skipIf(gdbNeeds.missing.length > 0)('reads the first 32 bytes of every sampled held page as RAM had them', () => {
    const lines = gdbRead(sample, 0).filter((l) => /^0x[0-9a-f]+:\s+0x/.test(l));
    const seen = new Map<bigint, bigint[]>();
    for (const l of lines) {
      const [addr, ...words] = l.split(/\s+/).filter((x) => x !== '').map((x) => BigInt(x.replace(/:$/, '')));
      seen.set(addr, [...(seen.get(addr) ?? []), ...words]);
    }
    for (const p of sample) {
      const va = PAGE_OFFSET + p * PAGE_SIZE_N;
      const words = [...(seen.get(va) ?? []), ...(seen.get(va + 16n) ?? [])];
      const page = Buffer.alloc(32);
      words.slice(0, 4).forEach((w, i) => page.writeBigUInt64LE(w, i * 8));
      expect(words.length, `pfn 0x${p.toString(16)}`).toBe(4);
      expect(page.equals(r.truth.pages.get(p)?.subarray(0, 32) ?? truthPrefix(p)), `pfn 0x${p.toString(16)}`).toBe(true);
    }
  });
});

/** The first 32 bytes of a held page from dump.N (itself checked against RAM's hash below). */
function truthPrefix(pfn: bigint): Buffer {
  const d = openLkcdFile(path.join(dumpDirOf(r.dir), String(r.n), `dump.${r.n}`));
  try {
    const page = Buffer.from(d.readPage(pfn));
    expect(pageHash(page).equals(hashOf(r.truth.snap.hashes, pfn))).toBe(true);
    return page.subarray(0, 32);
  } finally {
    d.close();
  }
}

function libkdumpfileMissing(): string | null {
  if (!fs.existsSync(PYTHON)) return `${PYTHON} not found`;
  const s = spawnSync(PYTHON, ['-c', 'import kdumpfile'], { encoding: 'utf8' });
  return s.status === 0 ? null : 'python3 cannot import kdumpfile';
}
const lkMissing = libkdumpfileMissing();

/** sha1 of each page (physical address) read from the ELF file by libkdumpfile, or the exception's name. */
const SCRIPT = String.raw`
import hashlib, json, sys
import kdumpfile
ctx = kdumpfile.kdumpfile(sys.argv[1])
out = {'format': ctx.attr['file.format'], 'pages': {}}
for pfn in json.loads(sys.stdin.read()):
    try:
        out['pages'][str(pfn)] = hashlib.sha1(ctx.read(kdumpfile.KDUMP_MACHPHYSADDR, pfn * 4096, 4096)).hexdigest()
    except Exception as e:
        out['pages'][str(pfn)] = 'ERR %s' % type(e).__name__
print(json.dumps(out))
`;

describe(`libkdumpfile and vmcore-dmesg on the export${lkMissing ? ` [SKIPPED: ${lkMissing}]` : ''}${needs('vmcore-dmesg').reason}`, () => {
  it.skipIf(lkMissing !== null)('libkdumpfile reads every held page as RAM had it, and finds no data where the dump holds none', () => {
    const pfns = [...held, ...absent];
    const s = spawnSync('timeout', [String(TOOL_SECONDS), PYTHON, '-c', SCRIPT, vmcore], { input: JSON.stringify(pfns.map(Number)), encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(s.status, s.stderr).toBe(0);
    const lk = JSON.parse(s.stdout) as { format: string; pages: Record<string, string> };
    expect(lk.format).toBe('elf');
    const wrong = held.filter((p) => lk.pages[String(p)] !== hashOf(r.truth.snap.hashes, p).toString('hex'));
    expect(wrong.slice(0, 8).map((p) => `0x${p.toString(16)}: ${lk.pages[String(p)]}`)).toEqual([]);
    for (const p of absent) expect(lk.pages[String(p)], `pfn 0x${p.toString(16)}`).toBe('ERR NoDataException');
  });

  it.skipIf(!findTool('vmcore-dmesg'))('vmcore-dmesg prints the log that was in RAM before the panic', () => {
    const out = runTool(findTool('vmcore-dmesg')!, [vmcore], TOOL_SECONDS);
    expect(out.status, out.stderr).toBe(0);
    expect(out.stdout).toBe(r.truth.dmesg);
  });
});
