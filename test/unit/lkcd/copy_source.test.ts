/**
 * lkcd save's one pass over the device dump (lkcd/copy_source.ts): the
 * reader walks a source over [start, end) of the device while it is copied
 * to dump.N and hashed. Truth: the dump mklkcd wrote (its bytes, its
 * pages), placed on a device file between other bytes; sha256 computed
 * here with node:crypto over those bytes; the problems the reader names
 * when it opens the same damaged bytes from a plain file.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DumpError } from '../../../src/codec/index.js';
import { BlockDevice, DUMP_HEADER_OFFSET } from '../../../src/dump/index.js';
import { CopyingSource } from '../../../lkcd/copy_source.js';
import { openSavedDump } from '../../../lkcd/save.js';
import { buildLkcd, type MklkcdResult } from '../../tools/mklkcd.js';

let dir: string;
let serial = 0;
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-copysrc-')); });
afterAll(() => { fs.rmSync(dir, { recursive: true, force: true }); });

/**
 * 700 pages (random ones stored raw, runs stored compressed): about 1.6 MiB,
 * more than the reader's 1 MiB window and the source's gap-fill limit, so
 * the extension area at the end is read far ahead of the copy.
 */
function spec(): string {
  const lines = ['compress gzip', 'memory_size 0x1000', 'panic "copy source"'];
  for (let i = 0; i < 700; i++) {
    const at = `@0x${((i + 1) * 0x1000).toString(16)}`;
    lines.push(i % 3 === 0 ? `${at} auto 5a*1024 ${(i & 0xff).toString(16).padStart(2, '0')}*3072` : `${at} auto random:${i + 1}`);
  }
  lines.push('end', 'checksums 0x900-0x910:did-not-fit');
  return lines.join('\n');
}

const BUILT: MklkcdResult = buildLkcd(spec());
const DUMP = Buffer.from(BUILT.bytes);
const SHA = crypto.createHash('sha256').update(DUMP).digest('hex');

/** A device file: 0xee before the dump (the mark page and the rest of the header offset), the dump at DUMP_HEADER_OFFSET, 0xdd after. */
function device(bytes: Buffer = DUMP): { dev: string; start: bigint; end: bigint } {
  const dev = path.join(dir, `vmdump.${serial++}`);
  const start = DUMP_HEADER_OFFSET;
  fs.writeFileSync(dev, Buffer.concat([Buffer.alloc(Number(start), 0xee), bytes, Buffer.alloc(3 * 4096 + 17, 0xdd)]));
  return { dev, start, end: start + BigInt(bytes.length) };
}

function copyPath(): string {
  return path.join(dir, `dump.${serial++}`);
}

describe('one pass: copy, sha256 and the reader\'s checks', () => {
  it('dump.N is the device\'s bytes from the header to the end, 0600; the sha256 is theirs; the dump opens verified, every page as written', () => {
    const { dev, start, end } = device();
    const file = copyPath();
    const bd = BlockDevice.open(dev);
    try {
      const src = CopyingSource.open(bd, { start, end }, file);
      const dump = openSavedDump(src);
      try {
        const sha = src.finish();
        src.sync();
        expect(sha).toBe(SHA);
        const integ = dump.integrity();
        expect([integ.state, integ.checksum, integ.problems]).toEqual(['truncated', 'verified', []]);
        expect(dump.attrs['dump.pages']).toBe(BUILT.pages.size);
        for (const [pfn, bytes] of BUILT.pages) expect(Buffer.from(dump.readPage(pfn)).equals(Buffer.from(bytes)), `pfn ${pfn}`).toBe(true);
      } finally {
        dump.close();
      }
    } finally {
      bd.close();
    }
    expect(fs.readFileSync(file).equals(DUMP)).toBe(true);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });

  it('a page altered on the device is named exactly as a reader of the same bytes in a file names it, with dump.N\'s path and offsets', () => {
    const rec = BUILT.records.find((r) => r.kind === 'page' && r.pfn === 0x191n)!;
    const bad = Buffer.from(DUMP);
    bad[Number(rec.dataOffset) + 40] ^= 0x10;
    const plain = path.join(dir, 'plain-copy');
    fs.writeFileSync(plain, bad);
    const expected = openSavedDump(plain);
    const want = expected.integrity().problems.map((p) => [p.pfn, p.offset, p.error.code, p.error.message]);
    expected.close();
    expect(want.length).toBeGreaterThan(0);
    expect(want[0][0]).toBe(0x191n);

    const { dev, start, end } = device(bad);
    // The same name as the plain file, so the messages compare whole.
    fs.renameSync(plain, path.join(dir, 'plain-copy.done'));
    const bd = BlockDevice.open(dev);
    try {
      const src = CopyingSource.open(bd, { start, end }, path.join(dir, 'plain-copy'));
      const dump = openSavedDump(src);
      try {
        expect(src.finish()).toBe(crypto.createHash('sha256').update(bad).digest('hex'));
        expect(dump.integrity().problems.map((p) => [p.pfn, p.offset, p.error.code, p.error.message])).toEqual(want);
        expect(dump.integrity().state).toBe('damaged');
      } finally {
        dump.close();
      }
    } finally {
      bd.close();
    }
    expect(fs.readFileSync(path.join(dir, 'plain-copy')).equals(bad)).toBe(true);
  });

  it('bytes read ahead of the copy that change on the device before the copy gets there fail the save (IO), naming dump.N and the offset', () => {
    const { dev, start, end } = device();
    const bd = BlockDevice.open(dev);
    const file = copyPath();
    const src = CopyingSource.open(bd, { start, end }, file);
    try {
      const at = BigInt(DUMP.length - 3000);
      const got = new Uint8Array(100);
      expect(src.readAt(got, at)).toBe(100);
      expect(Buffer.from(got).equals(DUMP.subarray(DUMP.length - 3000, DUMP.length - 2900))).toBe(true);
      const fd = fs.openSync(dev, 'r+');
      fs.writeSync(fd, Buffer.from([DUMP[DUMP.length - 2950] ^ 1]), 0, 1, Number(start + at) + 50);
      fs.closeSync(fd);
      let err: unknown = null;
      try { src.finish(); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(DumpError);
      expect((err as DumpError).code).toBe('IO');
      expect((err as DumpError).message).toBe(`${file}: the dump device changed while it was being saved (100 bytes at offset 0x${at.toString(16)} differ from what was read)`);
    } finally {
      src.close();
      bd.close();
    }
  });

  it('after finish() reads come from the copy, not the device', () => {
    const { dev, start, end } = device();
    const bd = BlockDevice.open(dev);
    const src = CopyingSource.open(bd, { start, end }, copyPath());
    try {
      expect(src.finish()).toBe(SHA);
      fs.writeFileSync(dev, Buffer.alloc(fs.statSync(dev).size, 0x77));
      const got = new Uint8Array(4096);
      expect(src.readAt(got, 8192n)).toBe(4096);
      expect(Buffer.from(got).equals(DUMP.subarray(8192, 8192 + 4096))).toBe(true);
      // Past the dump's end there is nothing, as in dump.N.
      expect(src.readAt(got, BigInt(DUMP.length - 10))).toBe(10);
      expect(src.readAt(got, BigInt(DUMP.length))).toBe(0);
    } finally {
      src.close();
      bd.close();
    }
  });

  it('a full disk (LKCD_FAULT_SAVE_ENOSPC_AFTER) fails the copy with an IO error naming dump.N, before writing past the limit', () => {
    const { dev, start, end } = device();
    const bd = BlockDevice.open(dev);
    const file = copyPath();
    const src = CopyingSource.open(bd, { start, end }, file, { enospcAfter: 1 << 20 });
    let err: unknown = null;
    try {
      openSavedDump(src).close();
    } catch (e) {
      err = e;
    } finally {
      bd.close();
    }
    expect(err).toBeInstanceOf(DumpError);
    expect((err as DumpError).code).toBe('IO');
    expect((err as DumpError).message).toBe(`copying the dump: ${file}: no space left on device`);
    expect(fs.statSync(file).size).toBeLessThanOrEqual(1 << 20);
    expect(DUMP.subarray(0, fs.statSync(file).size).equals(fs.readFileSync(file))).toBe(true);
  });
});
