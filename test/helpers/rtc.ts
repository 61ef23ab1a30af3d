/**
 * The machine's RTC file (lib/machine/rtc) and the device's saved mark,
 * decoded here from their layouts (README, "The machine root" and "lkcd
 * save"), not with the code under test:
 *
 *   rtc_state        u8 magic[8] = "LKCDRTC\0"; u64 rtc_sec; u32 rtc_nsec;
 *                    u32 rtc_crc32 = CRC32 of the 20 bytes before it
 *   lkcd_saved_mark  at device offset 0: u8 magic[8] = "LKCDSAVD"; u32 sm_n;
 *                    u32 sm_state (0 saved, 1 being saved); u8 sm_sha256[32]
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { expect } from 'vitest';

/** What a new root's RTC reads: 2026-11-18 11:06:40 UTC. */
export const RTC_EPOCH = 1795000000n;

export interface RtcReading { sec: bigint; nsec: number }

/** The RTC file of a machine root, checked whole; null when the root has none. */
export function readRtcFacts(root: string): RtcReading | null {
  const file = path.join(root, 'lib', 'machine', 'rtc');
  if (!fs.existsSync(file)) return null;
  const b = fs.readFileSync(file);
  expect(b.length, file).toBe(24);
  expect(b.subarray(0, 8).toString('latin1')).toBe('LKCDRTC\0');
  expect(b.readUInt32LE(20), `${file}: rtc_crc32`).toBe(zlib.crc32(b.subarray(0, 20)) >>> 0);
  const nsec = b.readUInt32LE(16);
  expect(nsec).toBeLessThan(1_000_000_000);
  return { sec: b.readBigUInt64LE(8), nsec };
}

/** A time as nanoseconds since the epoch, for comparisons. */
export const nsOf = (t: RtcReading): bigint => t.sec * 1_000_000_000n + BigInt(t.nsec);

/** dh_time of an LKCD dump file (offset 308 of dump_header_t: u64 tv_sec, u64 tv_usec), in nanoseconds. */
export function dumpTimeNs(file: string): bigint {
  const fd = fs.openSync(file, 'r');
  const b = Buffer.alloc(16);
  try {
    expect(fs.readSync(fd, b, 0, 16, 308)).toBe(16);
  } finally {
    fs.closeSync(fd);
  }
  return b.readBigUInt64LE(0) * 1_000_000_000n + b.readBigUInt64LE(8) * 1000n;
}

export interface MarkFacts { n: number; state: number; sha256: string }

/** The saved mark in the first page of a dump device, or null when there is none. */
export function readMarkFacts(device: string): MarkFacts | null {
  const fd = fs.openSync(device, 'r');
  const b = Buffer.alloc(48);
  try {
    fs.readSync(fd, b, 0, 48, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (b.subarray(0, 8).toString('latin1') !== 'LKCDSAVD') return null;
  return { n: b.readUInt32LE(8), state: b.readUInt32LE(12), sha256: b.subarray(16, 48).toString('hex') };
}
