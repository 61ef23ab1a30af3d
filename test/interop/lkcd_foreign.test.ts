/**
 * libkdumpfile (Debian python3-libkdumpfile) and our reader on the same
 * LKCD dumps from the independent writer (test/tools/foreign_lkcd.ts):
 * other NR_CPUS, v8 and v9, pages out of order with gaps, no END record,
 * RLE in both conventions. Both must read every page as it was written,
 * except where known-deviations.txt says libkdumpfile cannot: it reads RLE
 * runs as N copies, so the compressed pages of a kernel-convention RLE dump
 * that hold a run fail in it (and only those).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { openDump } from '../../src/dump/formats/index.js';
import { LIBKDUMPFILE, needs, PYTHON } from '../helpers/tools.js';
import { foreignLkcd, rleKernel, rleLibkdumpfile, samplePages, type ForeignCompress, type ForeignSpec } from '../tools/foreign_lkcd.js';

const lk = needs(LIBKDUMPFILE);

const SCRIPT = String.raw`
import hashlib, json, sys
import kdumpfile
ctx = kdumpfile.kdumpfile(sys.argv[1])
out = {'format': ctx.attr['file.format'], 'description': ctx.attr['file.description'], 'release': ctx.attr['linux.uts.release'], 'pages': {}}
for pfn in json.loads(sys.stdin.read()):
    try:
        out['pages'][str(pfn)] = hashlib.sha1(ctx.read(kdumpfile.KDUMP_MACHPHYSADDR, pfn * 4096, 4096)).hexdigest()
    except Exception as e:
        out['pages'][str(pfn)] = 'ERR %s' % type(e).__name__
print(json.dumps(out))
`;

interface LkView { format: string; description: string; release: string; pages: Record<string, string> }

function libkdumpfile(file: string, pfns: number[]): LkView {
  const r = spawnSync('timeout', ['120', PYTHON, '-c', SCRIPT, file], { input: JSON.stringify(pfns), encoding: 'utf8', maxBuffer: 64 << 20 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as LkView;
}

const sha1 = (b: Uint8Array): string => createHash('sha1').update(b).digest('hex');

let dir: string;
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-foreign-lk-')); });
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const PFNS = [0x10, 0x11, 0x12, 0x14, 0x15, 0x13, 0x40, 0x41, 0x2a0, 0x2a1, 0x22, 0x23, 0x24, 0x25, 0x30, 0x31, 0x32, 0x33, 0x700, 0x701];

interface Case { name: string; spec: ForeignSpec; cutRecord?: number }
const CASES: Case[] = [
  ...([1, 8, 64, 128] as const).flatMap((nrCpus) => (['none', 'gzip', 'rle-libkdumpfile', 'rle-kernel'] as ForeignCompress[]).map((compress) => ({
    name: `NR_CPUS ${nrCpus}, v${nrCpus % 16 === 0 ? 9 : 8}, ${compress}`,
    spec: { version: (nrCpus % 16 === 0 ? 9 : 8) as 8 | 9, nrCpus, compress, pages: samplePages(PFNS) },
  }))),
  { name: 'no END record, cut inside record 12', spec: { version: 9, nrCpus: 8, compress: 'gzip', pages: samplePages(PFNS), end: false }, cutRecord: 12 },
];

describe('libkdumpfile and our reader on dumps from another LKCD writer', () => {
  lk.it.for(CASES)('$name: every page as written, in both (but the known RLE deviation)', (c) => {
    let built = foreignLkcd(c.spec);
    if (c.cutRecord !== undefined) built = foreignLkcd({ ...c.spec, cutAt: built.records[c.cutRecord].offset + 16 + 10 });
    const file = path.join(dir, c.name.replace(/[^a-z0-9]+/gi, '-'));
    fs.writeFileSync(file, built.bytes);
    const pages = c.spec.pages;
    const theirs = libkdumpfile(file, [...pages.map((p) => p.pfn), 0x999]);
    expect(theirs.format).toBe('lkcd');
    expect(theirs.description).toBe(`Linux Kernel Crash Dump v${c.spec.version}`);
    const d = openDump(file, { mode: 'salvage', verifyPages: true });
    try {
      expect(theirs.release).toBe(d.attrs['linux.uts.release']);
      expect(d.integrity().problems).toEqual([]);
      let deviations = 0;
      pages.forEach((p, i) => {
        const whole = c.cutRecord === undefined || i < c.cutRecord;
        const truth = sha1(p.data);
        if (!whole) {
          expect(() => d.readPage(BigInt(p.pfn))).toThrow(/not in the dump/);
          expect(theirs.pages[String(p.pfn)], `pfn ${p.pfn} past the cut`).toMatch(/^ERR/);
          return;
        }
        expect(sha1(d.readPage(BigInt(p.pfn))), `ours, pfn ${p.pfn}`).toBe(truth);
        // known-deviations.txt: libkdumpfile expands 00 N V to N copies.
        const rec = built.records[i];
        const kernelRun = c.spec.compress === 'rle-kernel' && rec.flags === 2 && !rleKernel(p.data).equals(rleLibkdumpfile(p.data));
        if (kernelRun) {
          expect(theirs.pages[String(p.pfn)], `libkdumpfile, kernel RLE pfn ${p.pfn}`).toMatch(/^ERR/);
          deviations++;
        } else {
          expect(theirs.pages[String(p.pfn)], `libkdumpfile, pfn ${p.pfn}`).toBe(truth);
        }
      });
      expect(theirs.pages['2457']).toMatch(/^ERR/);
      if (c.spec.compress === 'rle-kernel') expect(deviations).toBeGreaterThan(0);
      else expect(deviations).toBe(0);
    } finally {
      d.close();
    }
  });
});
