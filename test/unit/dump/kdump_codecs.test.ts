/**
 * The page decompressors of kdump-compressed dumps against the real
 * compressors of this host: LZO1X-1 and LZO1X-999 from liblzo2 and snappy
 * from libsnappy (through ctypes, test/tools/compress.py), zstd from the
 * zstd tool at several levels and options. Broken streams end in one
 * CorruptDumpError, never a hang, a crash or a wrong length reported as good.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DumpError } from '../../../src/codec/index.js';
import { lzo1xDecompress, snappyDecompress, xxh64, zstdDecompress } from '../../../src/dump/index.js';
import { makeTempDir, removeTempDir } from '../../helpers/machine.js';
import { findTool, needs, runTool } from '../../helpers/tools.js';
import { REPO } from '../../helpers/cli.js';

const PY = '/usr/bin/python3';
const COMPRESS = path.join(REPO, 'test', 'tools', 'compress.py');

let dir: string;
const inputs = new Map<string, Buffer>();

function pyLib(lib: string): boolean {
  if (!findTool(PY)) return false;
  return spawnSync(PY, ['-c', `import ctypes; ctypes.CDLL('${lib}')`]).status === 0;
}
// With LKCD_REQUIRE_TOOLS=1 a missing library fails the tests instead of skipping them.
const required = process.env.LKCD_REQUIRE_TOOLS === '1';
const haveLzo = required || pyLib('liblzo2.so.2');
const haveSnappy = required || pyLib('libsnappy.so.1');

beforeAll(() => {
  dir = makeTempDir('codecs');
  const rng = crypto.createHash('sha256');
  const text = fs.readFileSync('/usr/share/common-licenses/GPL-3');
  const code = fs.readFileSync(process.execPath).subarray(0x10000, 0x10000 + 300_000);
  const random = crypto.randomBytes(4096);
  rng.update('x');
  inputs.set('zero-page', Buffer.alloc(4096));
  inputs.set('text-page', text.subarray(0, 4096));
  inputs.set('code-page', code.subarray(8192, 12288));
  inputs.set('random-page', random);
  inputs.set('half-random', Buffer.concat([text.subarray(0, 2048), random.subarray(0, 2048)]));
  inputs.set('pattern', Buffer.from('abcabcabd'.repeat(2000)));
  inputs.set('text-35k', text.subarray(0, 35_000));
  inputs.set('code-300k', code);
  inputs.set('one-byte', Buffer.from('A'));
  for (const [name, data] of inputs) fs.writeFileSync(path.join(dir, name), data);
});
afterAll(() => removeTempDir(dir));

function compressPy(method: string, name: string): Buffer {
  const out = path.join(dir, `${name}.${method}`);
  const r = spawnSync(PY, [COMPRESS, method, path.join(dir, name), out], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return fs.readFileSync(out);
}

/** Flips, truncates and extends `stream`; each variant decodes to the original or fails with a DumpError. */
function expectNoSilentDamage(decode: (s: Uint8Array, out: Uint8Array) => number, stream: Buffer, orig: Buffer): number {
  let failures = 0;
  const variants: Buffer[] = [stream.subarray(0, stream.length - 1), stream.subarray(0, stream.length >> 1), Buffer.concat([stream, Buffer.from([0])])];
  for (let i = 0; i < Math.min(stream.length, 64); i++) {
    const v = Buffer.from(stream);
    v[Math.floor((i * stream.length) / 64)] ^= 1 << (i % 8);
    variants.push(v);
  }
  for (const v of variants) {
    const out = new Uint8Array(orig.length);
    try {
      const n = decode(v, out);
      // A flip may land in literal bytes: then the output differs, which only a checksum could catch.
      if (n === orig.length && Buffer.from(out).equals(orig)) continue;
    } catch (e) {
      expect(e, String(e)).toBeInstanceOf(DumpError);
      failures++;
    }
  }
  return failures;
}

describe(`LZO1X against liblzo2${haveLzo ? '' : ' [SKIPPED: python3 with liblzo2 not available]'}`, () => {
  for (const method of ['lzo1x_1', 'lzo1x_999']) {
    it.skipIf(!haveLzo)(`decompresses what ${method}_compress wrote, byte for byte`, () => {
      for (const [name, orig] of inputs) {
        const stream = compressPy(method, name);
        const out = new Uint8Array(orig.length);
        expect(lzo1xDecompress(stream, out), name).toBe(orig.length);
        expect(Buffer.from(out).equals(orig), name).toBe(true);
      }
    });
  }
  it.skipIf(!haveLzo)('broken streams fail with one DumpError (none decodes to the original when the end marker is gone)', () => {
    const orig = inputs.get('text-35k')!;
    const stream = compressPy('lzo1x_1', 'text-35k');
    expect(expectNoSilentDamage(lzo1xDecompress, stream, orig)).toBeGreaterThan(3);
    expect(() => lzo1xDecompress(stream, new Uint8Array(orig.length - 1))).toThrow(/output overrun/);
    expect(() => lzo1xDecompress(new Uint8Array(0), new Uint8Array(16))).toThrow(/input overrun/);
  });
});

describe(`snappy against libsnappy${haveSnappy ? '' : ' [SKIPPED: python3 with libsnappy not available]'}`, () => {
  it.skipIf(!haveSnappy)('decompresses what snappy_compress wrote, byte for byte', () => {
    for (const [name, orig] of inputs) {
      const stream = compressPy('snappy', name);
      const out = new Uint8Array(orig.length);
      expect(snappyDecompress(stream, out), name).toBe(orig.length);
      expect(Buffer.from(out).equals(orig), name).toBe(true);
    }
  });
  it.skipIf(!haveSnappy)('broken streams fail with one DumpError', () => {
    const orig = inputs.get('code-page')!;
    expect(expectNoSilentDamage(snappyDecompress, compressPy('snappy', 'code-page'), orig)).toBeGreaterThan(3);
  });
});

const zstdTool = needs('zstd');
describe(`zstd against the zstd tool${zstdTool.reason}`, () => {
  const zstd = (name: string, args: string[], suffix: string): Buffer => {
    const out = path.join(dir, `${name}.${suffix}.zst`);
    const r = runTool('zstd', ['-q', '-f', ...args, path.join(dir, name), '-o', out]);
    expect(r.status, r.stderr).toBe(0);
    return fs.readFileSync(out);
  };
  const variants: Array<[string, string[]]> = [['1', ['-1']], ['3', ['-3']], ['19', ['-19']], ['22', ['--ultra', '-22', '--long=24']],
    ['nocheck', ['-1', '--no-check']], ['fast', ['--fast=5']]];
  for (const [suffix, args] of variants) {
    it.skipIf(zstdTool.missing.length > 0)(`decompresses zstd ${args.join(' ')} output, byte for byte, its content checksum verified`, () => {
      for (const [name, orig] of inputs) {
        const stream = zstd(name, args, suffix);
        const out = new Uint8Array(orig.length);
        expect(zstdDecompress(stream, out), `${name} ${suffix}`).toBe(orig.length);
        expect(Buffer.from(out).equals(orig), `${name} ${suffix}`).toBe(true);
      }
    });
  }
  it.skipIf(zstdTool.missing.length > 0)('concatenated frames and a skippable frame decode as one stream', () => {
    const a = inputs.get('text-page')!;
    const b = inputs.get('code-page')!;
    const skippable = Buffer.alloc(8 + 5);
    skippable.writeUInt32LE(0x184d2a53, 0);
    skippable.writeUInt32LE(5, 4);
    const stream = Buffer.concat([zstd('text-page', ['-3'], 'c1'), skippable, zstd('code-page', ['-3'], 'c2')]);
    const out = new Uint8Array(a.length + b.length);
    expect(zstdDecompress(stream, out)).toBe(out.length);
    expect(Buffer.from(out).equals(Buffer.concat([a, b]))).toBe(true);
  });
  it.skipIf(zstdTool.missing.length > 0)('broken streams fail with one DumpError or still give the original (a flip in a bit the decoder ignores); never wrong bytes, thanks to the checksum', () => {
    const orig = inputs.get('text-35k')!;
    const stream = zstd('text-35k', ['-3'], 'broken');
    const variants = [stream.subarray(0, stream.length - 1), stream.subarray(0, 20)];
    for (let i = 4; i < stream.length; i += Math.max(1, Math.floor(stream.length / 80))) {
      const v = Buffer.from(stream);
      v[i] ^= 0x10;
      variants.push(v);
    }
    let failed = 0;
    for (const v of variants) {
      const out = new Uint8Array(orig.length);
      try {
        expect(zstdDecompress(v, out)).toBe(orig.length);
        expect(Buffer.from(out).equals(orig)).toBe(true);
      } catch (e) {
        if (!(e instanceof DumpError)) throw e;
        failed++;
      }
    }
    expect(failed).toBeGreaterThan(variants.length - 4);
  });
});

describe('xxh64', () => {
  it('matches the reference values of the xxHash specification', () => {
    // XXH64 of the empty input and of "a" with seed 0 (xxHash's sanity test values).
    expect(xxh64(new Uint8Array(0))).toBe(0xef46db3751d8e999n);
    expect(xxh64(Buffer.from('a'))).toBe(0xd24ec4f1a98c6e5bn);
  });
});
