import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { DUMP_DH_COMPRESSED, DUMP_DH_RAW } from '../../src/dump/codecs/index.js';
import { openDump, type ProbedDump } from '../../src/dump/formats/index.js';
import { fixtureSpec, writeLkcd, type MklkcdResult } from '../tools/mklkcd.js';
import { LIBKDUMPFILE, needs, PYTHON } from '../helpers/tools.js';

/**
 * libkdumpfile (Debian python3-libkdumpfile), an independent LKCD reader,
 * opens mklkcd-made dumps: it must call them LKCD, see their release and
 * page size, and read every page with the bytes our reader returns.
 */
const lk = needs(LIBKDUMPFILE);

/** Reads the given PFNs with libkdumpfile; prints one JSON object. */
const SCRIPT = String.raw`
import hashlib, json, sys
import kdumpfile
path, pfns = sys.argv[1], json.loads(sys.stdin.read())
ctx = kdumpfile.kdumpfile(path)
attr = ctx.attr
out = {
    'format': attr['file.format'],
    'description': attr['file.description'],
    'release': attr['linux.uts.release'],
    'page_size': attr['arch.page_size'],
    'pages': {},
}
for pfn in pfns:
    try:
        data = ctx.read(kdumpfile.KDUMP_MACHPHYSADDR, pfn * 4096, 4096)
        out['pages'][str(pfn)] = hashlib.sha1(data).hexdigest()
    except Exception as e:
        out['pages'][str(pfn)] = 'ERR %s: %s' % (type(e).__name__, e)
print(json.dumps(out))
`;

interface KdumpfileView {
  format: string;
  description: string;
  release: string;
  page_size: number;
  pages: Record<string, string>;
}

function readWithLibkdumpfile(file: string, pfns: bigint[]): KdumpfileView {
  const r = spawnSync('timeout', ['120', PYTHON, '-c', SCRIPT, file], {
    input: JSON.stringify(pfns.map(Number)), encoding: 'utf8', maxBuffer: 64 << 20,
  });
  expect(r.status, `python3 kdumpfile on ${file}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout) as KdumpfileView;
}

const sha1 = (b: Uint8Array): string => createHash('sha1').update(b).digest('hex');

let dir: string;
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-libkdumpfile-')); });
afterAll(() => { fs.rmSync(dir, { recursive: true, force: true }); });

interface Case { name: string; spec: () => string }

/** Dumps whose every page libkdumpfile must read exactly as we do. */
const AGREE: Case[] = [
  ...['layout-normal', 'layout-out-of-order', 'layout-gapped'].flatMap((layout) => ['gzip', 'none'].map((codec) => ({
    name: `${codec} ${layout}`, spec: () => `compress ${codec}\n${fixtureSpec(layout)}`,
  }))),
  { name: 'gzip v8', spec: () => `${fixtureSpec('v8')}\ncompress gzip` },
  { name: 'gzip, truncated, with trailer and tail fill', spec: () => fixtureSpec('truncated-with-trailer') },
  { name: 'gzip page tables', spec: () => fixtureSpec('pagetables') },
];

function build(c: Case): { file: string; built: MklkcdResult } {
  const file = path.join(dir, `${c.name.replace(/[^a-z0-9]+/gi, '-')}.dump`);
  return { file, built: writeLkcd(c.spec(), file) };
}

function withDump<T>(file: string, fn: (d: ProbedDump) => T): T {
  const d = openDump(file);
  try {
    return fn(d);
  } finally {
    d.close();
  }
}

describe('libkdumpfile reads our LKCD dumps', () => {
  lk.it.for(AGREE)('$name: same format, release, page size and pages', (c) => {
    const { file, built } = build(c);
    const absent = [...Array(0x20).keys()].map(BigInt).find((p) => !built.pages.has(p))!;
    const lk = readWithLibkdumpfile(file, [...built.order, absent]);
    withDump(file, (d) => {
      expect(lk.format).toBe('lkcd');
      expect(lk.description).toBe(d.attrs['file.description']);
      expect(lk.release).toBe(d.attrs['linux.uts.release']);
      expect(lk.page_size).toBe(d.attrs['arch.page_size']);
      for (const pfn of d.pages()) {
        expect(lk.pages[String(pfn)], `pfn ${pfn}`).toBe(sha1(d.readPage(pfn)));
        expect(sha1(d.readPage(pfn))).toBe(sha1(built.pages.get(pfn)!));
      }
      expect(lk.pages[String(absent)]).toMatch(/^ERR NoDataException/);
      expect(() => d.readPage(absent)).toThrow(/not in the dump/);
    });
  });

  // Known deviation (test/interop/known-deviations.txt): libkdumpfile's
  // uncompress_rle() expands `00 N V` to N copies where the kernel and crash
  // write and read N + 1, so none of our compressed RLE pages reads back in
  // libkdumpfile. If it starts to agree, this fails and the deviation goes.
  lk.it('RLE: raw pages agree, every compressed page differs (N vs N+1 copies)', () => {
    const { file, built } = build({ name: 'rle layout-normal', spec: () => `compress rle\n${fixtureSpec('layout-normal')}` });
    const lk = readWithLibkdumpfile(file, built.order);
    expect(lk.format).toBe('lkcd');
    const pages = built.records.filter((r) => r.kind === 'page');
    expect(pages.some((r) => r.dpFlags === DUMP_DH_COMPRESSED)).toBe(true);
    expect(pages.some((r) => r.dpFlags === DUMP_DH_RAW)).toBe(true);
    withDump(file, (d) => {
      for (const r of pages) {
        const ours = sha1(d.readPage(r.pfn!));
        expect(ours).toBe(sha1(built.pages.get(r.pfn!)!));
        if (r.dpFlags === DUMP_DH_RAW) expect(lk.pages[String(r.pfn)], `raw pfn ${r.pfn}`).toBe(ours);
        else expect(lk.pages[String(r.pfn)], `rle pfn ${r.pfn}`).not.toBe(ours);
      }
    });
  });
});
