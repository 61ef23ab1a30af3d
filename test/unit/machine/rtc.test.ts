/**
 * The RTC file (src/machine/rtc.ts) and the device's saved mark
 * (src/dump/device_dump.ts): sizes and offsets from their documented
 * layouts (README), hex vectors built here from those facts, every
 * malformed field refused naming the file and field, and the clock never
 * set backwards.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DumpError } from '../../../src/codec/index.js';
import {
  advanceRtc, decodeRtc, encodeRtc, MachineRoot, readRtc, readRtcFile, RTC_EPOCH_SEC, rtc_state,
} from '../../../src/machine/index.js';
import {
  BlockDevice, lkcd_saved_mark, readDeviceMark, readSavedMark, writeSavedMark, writeSavingMark,
} from '../../../src/dump/index.js';

let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-rtc-unit-')); });
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const le64 = (v: bigint): string => Buffer.from(new BigUint64Array([v]).buffer).toString('hex');
const le32 = (v: number): string => Buffer.from(new Uint32Array([v]).buffer).toString('hex');
/** rtc_state from its facts: "LKCDRTC\0", u64 sec, u32 nsec, u32 CRC32 of the 20 bytes before. */
function rtcHex(sec: bigint, nsec: number): string {
  const body = Buffer.from(`${Buffer.from('LKCDRTC\0', 'latin1').toString('hex')}${le64(sec)}${le32(nsec)}`, 'hex');
  return body.toString('hex') + le32(zlib.crc32(body) >>> 0);
}

function errorOf(fn: () => unknown): DumpError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DumpError);
    return e as DumpError;
  }
  throw new Error('expected a throw');
}

describe('rtc_state', () => {
  it('is 24 bytes: magic 0, rtc_sec 8, rtc_nsec 16, rtc_crc32 20', () => {
    expect(rtc_state.size).toBe(24);
    expect(rtc_state.offsetOf).toEqual({ rtc_magic: 0, rtc_sec: 8, rtc_nsec: 16, rtc_crc32: 20 });
  });

  it('encodes and decodes the vector written from the layout', () => {
    const hex = rtcHex(1795000123n, 456_000_000);
    expect(Buffer.from(encodeRtc({ sec: 1795000123n, nsec: 456_000_000 })).toString('hex')).toBe(hex);
    expect(decodeRtc(Buffer.from(hex, 'hex'), 'f')).toEqual({ sec: 1795000123n, nsec: 456_000_000 });
  });

  it.each([
    // A byte of the magic changed: 'LKCDRTC\0' -> 'LKCDRTX\0'.
    ['a wrong magic', (b: Buffer) => { b[6] = 0x58; }, 'rtc_magic', /not an RTC \(magic 0x58545244434b4c\)$/],
    // One bit of rtc_sec flipped: the CRC32 no longer matches.
    ['a flipped bit', (b: Buffer) => { b[9] ^= 1; }, 'rtc_crc32', /RTC checksum 0x[0-9a-f]+ does not match its bytes/],
    ['a short file', null, 'rtc_magic', /23 bytes, not an RTC \(24 bytes\)/],
  ])('refuses %s with CORRUPT naming the file and field', (_what, edit, field, message) => {
    let b = Buffer.from(rtcHex(1795000123n, 1), 'hex');
    if (edit) edit(b);
    else b = b.subarray(0, 23);
    const e = errorOf(() => decodeRtc(b, '/m/lib/machine/rtc'));
    expect(e.code).toBe('CORRUPT');
    expect(e.where).toMatchObject({ file: '/m/lib/machine/rtc', struct: 'rtc_state', field });
    expect(e.message).toMatch(/^\/m\/lib\/machine\/rtc: /);
    expect(e.message).toMatch(message);
  });

  it('refuses nanoseconds of a second or more, even with a good checksum', () => {
    const e = errorOf(() => decodeRtc(Buffer.from(rtcHex(5n, 1_000_000_000), 'hex'), 'f'));
    expect(e.where.field).toBe('rtc_nsec');
  });
});

describe('the RTC of a machine root', () => {
  it('reads the fixed epoch on a new root, and is written only when set', () => {
    const root = new MachineRoot(dir);
    expect(readRtcFile(root)).toBeNull();
    expect(readRtc(root)).toEqual({ sec: RTC_EPOCH_SEC, nsec: 0 });
    expect(RTC_EPOCH_SEC).toBe(1795000000n);
    expect(advanceRtc(root, { sec: RTC_EPOCH_SEC + 5n, nsec: 7 })).toEqual({ sec: RTC_EPOCH_SEC + 5n, nsec: 7 });
    const file = path.join(dir, 'lib', 'machine', 'rtc');
    expect(fs.readFileSync(file).toString('hex')).toBe(rtcHex(RTC_EPOCH_SEC + 5n, 7));
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });

  it('never goes backwards: an earlier time leaves it, and its file, as they are', () => {
    const root = new MachineRoot(dir);
    advanceRtc(root, { sec: 2000000000n, nsec: 500 });
    const file = path.join(dir, 'lib', 'machine', 'rtc');
    const before = fs.statSync(file, { bigint: true });
    for (const t of [{ sec: 1999999999n, nsec: 999_999_999 }, { sec: 2000000000n, nsec: 499 }, { sec: 2000000000n, nsec: 500 }]) {
      expect(advanceRtc(root, t)).toEqual({ sec: 2000000000n, nsec: 500 });
    }
    // Not rewritten: the same inode (writes go through a temporary and a rename).
    expect(fs.statSync(file, { bigint: true }).ino).toBe(before.ino);
    expect(advanceRtc(root, { sec: 2000000000n, nsec: 501 })).toEqual({ sec: 2000000000n, nsec: 501 });
  });

  it('a corrupt RTC file is an error naming it, not a clock silently reset', () => {
    const root = new MachineRoot(dir);
    advanceRtc(root, { sec: 1n, nsec: 0 });
    const file = path.join(dir, 'lib', 'machine', 'rtc');
    fs.writeFileSync(file, Buffer.alloc(24));
    const e = errorOf(() => advanceRtc(root, { sec: 2n, nsec: 0 }));
    expect(e.code).toBe('CORRUPT');
    expect(e.message.startsWith(`${file}: `)).toBe(true);
  });
});

describe('lkcd_saved_mark', () => {
  const SHA = 'ab'.repeat(32);
  const device = (): BlockDevice => {
    const file = path.join(dir, 'vmdump');
    BlockDevice.ensure(file, 1n << 20n);
    return BlockDevice.open(file, { write: true });
  };

  it('is 48 bytes: magic 0, sm_n 8, sm_state 12, sm_sha256 16', () => {
    expect(lkcd_saved_mark.size).toBe(48);
    expect(lkcd_saved_mark.offsetOf).toEqual({ sm_magic: 0, sm_n: 8, sm_state: 12, sm_sha256: 16 });
  });

  it('writes "being saved" then "saved" as the layout says, and reads them back', () => {
    const dev = device();
    try {
      expect(readDeviceMark(dev)).toBeNull();
      writeSavingMark(dev, SHA, 3);
      const head = (): string => Buffer.from(dev.read(0n, 48)).toString('hex');
      expect(head()).toBe(`${Buffer.from('LKCDSAVD').toString('hex')}${le32(3)}${le32(1)}${SHA}`);
      expect(readDeviceMark(dev)).toEqual({ state: 'saving', n: 3, sha256: SHA });
      // Being saved is not saved: lkcd config must not write over it.
      expect(readSavedMark(dev)).toBeNull();
      writeSavedMark(dev, SHA, 3);
      expect(head()).toBe(`${Buffer.from('LKCDSAVD').toString('hex')}${le32(3)}${le32(0)}${SHA}`);
      expect(readSavedMark(dev)).toEqual({ n: 3, sha256: SHA });
      // The rest of the first page is cleared.
      expect(Buffer.from(dev.read(48n, 4096 - 48)).equals(Buffer.alloc(4096 - 48))).toBe(true);
    } finally {
      dev.close();
    }
  });

  it('a mark with a state this program does not know is refused naming sm_state', () => {
    const dev = device();
    try {
      dev.write(0n, Buffer.from(`${Buffer.from('LKCDSAVD').toString('hex')}${le32(0)}${le32(7)}${SHA}`, 'hex'));
      const e = errorOf(() => readDeviceMark(dev));
      expect(e.code).toBe('CORRUPT');
      expect(e.where).toMatchObject({ struct: 'lkcd_saved_mark', field: 'sm_state', offset: 12 });
      expect(e.message).toContain('unknown sm_state 7');
    } finally {
      dev.close();
    }
  });
});
