/**
 * The kdump-compressed reader against the real makedumpfile and
 * libkdumpfile: /proc/vmcore of a crashed 128 MiB machine, compressed by
 * makedumpfile with -c (zlib) and -l (LZO), and -p/-z where this host's
 * makedumpfile has them; every page our reader returns equals RAM at the
 * crash, and on every PFN below max_mapnr our reader and libkdumpfile
 * agree on presence and content. zstd and snappy pages (which makedumpfile
 * 1.7.2 here was built without) come from files the test writes from the
 * format's facts with pages compressed by the zstd tool and libsnappy.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DumpError, encodeElfNote } from '../../src/codec/index.js';
import { PAGE_SIZE, PAGE_SIZE_N } from '../../src/machine/index.js';
import {
  copyProcVmcore, crashMachine, DUMP_DH_COMPRESSED_SNAPPY, DUMP_DH_COMPRESSED_ZSTD, kdumpCompressedFormat, openDump,
  openDumpFile, closeDumpFile, probeKdumpCompressed, type KdumpCompressedDump,
} from '../../src/dump/index.js';
import { frameHashes, hashOf, pageHash } from '../helpers/ramdiff.js';
import { findTool, needs, runTool } from '../helpers/tools.js';
import { kdumpMachine, loadPanicKernel, readerHashes, region, sha1 } from '../helpers/kdump.js';
import type { TempMachine } from '../helpers/machine.js';
import { writeKdump, type MkPage } from '../tools/mkkdump.js';
import { REPO } from '../helpers/cli.js';

let m: TempMachine;
let vmcore: string;
let atCrash: Buffer;
let maxMapnr: number;
const pagesAtCrash = new Map<number, Buffer>();

const mdfVersion = spawnSync('makedumpfile', ['-v'], { encoding: 'utf8' });
const mdfHas = (codec: string): boolean => new RegExp(`^${codec}\\s+enabled`, 'm').test(`${mdfVersion.stdout}${mdfVersion.stderr}`);

beforeAll(() => {
  m = kdumpMachine({ mem: 128n << 20n, crashkernel: '32M', seed: 9 }, 'kdumpc');
  const r = region(m.sys);
  maxMapnr = Number(r.start / PAGE_SIZE_N);
  loadPanicKernel(m.sys);
  const out = crashMachine(m.sys, { kind: 'oops' }, {
    beforeDump(s) {
      atCrash = frameHashes(s.ram);
      // A spread of pages for the synthetic files: kernel image, low memory, the rest.
      for (let pfn = 1; pfn < maxMapnr; pfn += 97) pagesAtCrash.set(pfn, s.ram.read(BigInt(pfn) * PAGE_SIZE_N, PAGE_SIZE));
      for (let pfn = 0x1000; pfn < 0x1040; pfn++) pagesAtCrash.set(pfn, s.ram.read(BigInt(pfn) * PAGE_SIZE_N, PAGE_SIZE));
    },
  });
  m.sys = out.system;
  vmcore = path.join(m.dir, 'vmcore');
  copyProcVmcore(m.sys.kernel, vmcore);
}, 300_000);
afterAll(() => m?.destroy());

function open(file: string): KdumpCompressedDump {
  return openDump(file, {}, [kdumpCompressedFormat]) as KdumpCompressedDump;
}

/** Every PFN below max_mapnr: ours (hash or NODATA) against libkdumpfile's. */
function agreeWithLibkdumpfile(file: string, dump: KdumpCompressedDump): void {
  const all: Array<[bigint, number]> = Array.from({ length: maxMapnr }, (_, pfn) => [BigInt(pfn) * PAGE_SIZE_N, PAGE_SIZE]);
  const theirs = readerHashes('kdumpfile', file, all, m.dir);
  const ours = all.map(([a]) => (dump.has(a / PAGE_SIZE_N) ? sha1(dump.readPage(a / PAGE_SIZE_N)) : 'NODATA'));
  const differ = ours.map((h, i) => (h === theirs[i] ? null : i)).filter((i) => i !== null);
  expect(differ.slice(0, 10)).toEqual([]);
}

const options: Array<[string, string[], string]> = [
  ['-c', ['-c', '-d', '31'], 'zlib'],
  ['-l', ['-l', '-d', '31'], 'lzo'],
  ['-l -d 0', ['-l', '-d', '0'], 'lzo'],
  ...(mdfHas('snappy') ? [['-p', ['-p', '-d', '31'], 'snappy'] as [string, string[], string]] : []),
  ...(mdfHas('zstd') ? [['-z', ['-z', '-d', '31'], 'zstd'] as [string, string[], string]] : []),
];

const tools = needs('makedumpfile', '/usr/bin/python3', 'crash');
describe(`makedumpfile's kdump-compressed output of /proc/vmcore${tools.reason}`, () => {
  for (const [name, args, codec] of options) {
    it.skipIf(tools.missing.length > 0)(`${name}: every page equals RAM at the crash; libkdumpfile agrees on every PFN; crash --osrelease works`, () => {
      const out = path.join(m.dir, `vmcore${args.join('')}`);
      const r = runTool('makedumpfile', [...args, vmcore, out], 300);
      expect(r.status, r.stdout + r.stderr).toBe(0);
      const dump = open(out);
      try {
        expect(dump.attrs['file.format']).toBe('diskdump');
        expect(dump.attrs['dump.compression']).toBe(codec);
        expect(dump.attrs['dump.level']).toBe(Number(args[args.length - 1]));
        expect(dump.attrs['linux.uts.release']).toBe('5.4.0-lkcd');
        expect(dump.maxMapnr).toBe(BigInt(maxMapnr));
        expect(dump.vmcoreinfo).toMatch(/^OSRELEASE=5\.4\.0-lkcd$/m);
        expect(dump.vmcoreinfo).toMatch(/^CRASHTIME=\d+$/m);
        let n = 0;
        for (const pfn of dump.pages()) {
          expect(pageHash(dump.readPage(pfn)).equals(hashOf(atCrash, pfn)), `pfn 0x${pfn.toString(16)}`).toBe(true);
          n++;
        }
        expect(n).toBe(dump.attrs['dump.pages']);
        if (args.includes('0')) expect(n).toBeGreaterThan(maxMapnr - 400);
        else expect(n).toBeLessThan(maxMapnr / 2);
        agreeWithLibkdumpfile(out, dump);
      } finally {
        dump.close();
      }
      expect(runTool('crash', ['--osrelease', out]).stdout).toBe('5.4.0-lkcd\n');
    });
  }

  it.skipIf(!findTool('eu-readelf'))('the NT_PRSTATUS registers of the crashed CPU are those eu-readelf reads in /proc/vmcore', () => {
    const out = path.join(m.dir, 'vmcore-regs');
    expect(runTool('makedumpfile', ['-l', '-d', '31', vmcore, out]).status).toBe(0);
    const dump = open(out);
    const rip = /rip:\s+(0x[0-9a-f]+)/.exec(runTool('eu-readelf', ['-n', vmcore]).stdout);
    expect(rip).not.toBeNull();
    expect(dump.attrs['crash.regs'].ip).toBe(BigInt(rip![1]));
    dump.close();
  });

  it.skipIf(!findTool('makedumpfile'))('a flattened stream (makedumpfile -F) is refused naming makedumpfile -R; an ELF file is not this format', () => {
    const flat = path.join(m.dir, 'vmcore.flat');
    const r = spawnSync('sh', ['-c', `makedumpfile -F -l -d 31 ${vmcore} > ${flat}`]);
    expect(r.status).toBe(0);
    expect(() => open(flat)).toThrow(/makedumpfile -R/);
    const f = openDumpFile(vmcore);
    try { expect(probeKdumpCompressed(f)).toBeNull(); } finally { closeDumpFile(f); }
  });

  it.skipIf(!findTool('makedumpfile'))('a file cut short, an unknown header version, a broken page: one DumpError naming what is wrong', () => {
    const good = path.join(m.dir, 'vmcore-l');
    expect(runTool('makedumpfile', ['-l', '-d', '31', vmcore, good]).status).toBe(0);
    const bytes = fs.readFileSync(good);
    const cut = path.join(m.dir, 'cut');
    fs.writeFileSync(cut, bytes.subarray(0, 5000));
    expect(() => open(cut)).toThrow(/bitmaps .* run past the end of the file/);
    const dump = open(good);
    const pfns = [...dump.pages()];
    const last = pfns[pfns.length - 1];
    const lastDesc = dump.pageDesc(last);
    dump.close();
    fs.writeFileSync(cut, bytes.subarray(0, Number(lastDesc.offset) + 1));
    const short = open(cut);
    expect(() => short.readPage(last)).toThrow(/runs past the end of the file/);
    short.close();
    const v7 = Buffer.from(bytes);
    v7.writeInt32LE(7, 8);
    fs.writeFileSync(cut, v7);
    expect(() => open(cut)).toThrow(/header_version 7/);
    // The first page's descriptor given a flag no format defines.
    const d = open(good);
    const first = pfns.find((p) => d.pageDesc(p).flags !== 0)!;
    const descAt = Number(d.attrs['dump.data_offset']) + pfns.indexOf(first) * 24;
    d.close();
    const bad = Buffer.from(bytes);
    bad.writeUInt32LE(0x40, descAt + 12);
    fs.writeFileSync(cut, bad);
    const broken = open(cut);
    expect(() => broken.readPage(first)).toThrow(new RegExp(`page 0x${(first * PAGE_SIZE_N).toString(16)}: unknown page flags 0x40`));
    broken.close();
  });
});

function compressWith(tool: 'zstd' | 'snappy', pages: Map<number, Buffer>, dir: string): Map<number, Buffer> {
  fs.mkdirSync(dir, { recursive: true });
  const args: string[] = [];
  for (const [pfn, data] of pages) {
    fs.writeFileSync(path.join(dir, `${pfn}`), data);
    args.push(path.join(dir, `${pfn}`), path.join(dir, `${pfn}.${tool}`));
  }
  if (tool === 'zstd') {
    // Level 1 without a checksum, as makedumpfile's ZSTD_compressCCtx(..., 1) writes pages.
    const r = runTool('zstd', ['-q', '-f', '-1', '--no-check', ...[...pages.keys()].map((p) => path.join(dir, `${p}`))]);
    expect(r.status, r.stderr).toBe(0);
  } else {
    const r = spawnSync('/usr/bin/python3', [path.join(REPO, 'test', 'tools', 'compress.py'), 'snappy', ...args], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  }
  return new Map([...pages.keys()].map((p) => [p, fs.readFileSync(path.join(dir, `${p}.${tool === 'zstd' ? 'zst' : tool}`))]));
}

const synth = needs('zstd', '/usr/bin/python3');
describe(`zstd and snappy pages in files written from the format's facts${synth.reason}`, () => {
  for (const [tool, flag] of [['zstd', DUMP_DH_COMPRESSED_ZSTD], ['snappy', DUMP_DH_COMPRESSED_SNAPPY]] as const) {
    it.skipIf(synth.missing.length > 0)(`${tool}: our reader and libkdumpfile read every page as it was in RAM`, () => {
      const compressed = compressWith(tool, pagesAtCrash, path.join(m.dir, tool));
      const pages: MkPage[] = [...pagesAtCrash].map(([pfn, data]) => {
        if (data.every((b) => b === 0)) return { pfn, data, flags: 0, zero: true };
        const c = compressed.get(pfn)!;
        return c.length < PAGE_SIZE ? { pfn, data: c, flags: flag } : { pfn, data, flags: 0 };
      });
      expect(pages.filter((p) => p.flags === flag).length).toBeGreaterThan(100);
      const info = Buffer.from('OSRELEASE=5.4.0-lkcd\nPAGESIZE=4096\n');
      const note = encodeElfNote('VMCOREINFO', 0, info);
      const file = path.join(m.dir, `synthetic-${tool}.kdump`);
      writeKdump(file, {
        release: '5.4.0-lkcd', nodename: 'lkcd-sim', maxMapnr: Math.max(...pagesAtCrash.keys()) + 1, status: flag, dumpLevel: 31, notes: note,
        vmcoreinfo: { offset: 24, size: info.length }, pages, eraseinfo: 'erase log_buf size 4096\n',
      });
      const dump = open(file);
      try {
        expect(dump.attrs['dump.compression']).toBe(tool);
        expect(dump.vmcoreinfo).toBe(info.toString('latin1'));
        expect(dump.eraseinfo).toBe('erase log_buf size 4096\n');
        for (const [pfn, data] of pagesAtCrash) expect(Buffer.from(dump.readPage(BigInt(pfn))).equals(data), `pfn ${pfn}`).toBe(true);
        const want = [...pagesAtCrash.keys()].map((p) => [BigInt(p) * PAGE_SIZE_N, PAGE_SIZE] as [bigint, number]);
        expect(readerHashes('kdumpfile', file, want, m.dir)).toEqual([...pagesAtCrash.values()].map((d) => sha1(d)));
        expect(() => dump.readPage(2n)).toThrow(DumpError);
      } finally {
        dump.close();
      }
    });
  }
});
