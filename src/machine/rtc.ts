import path from 'node:path';
import zlib from 'node:zlib';
import { CorruptDumpError, defineStruct, hex, u32, u64, viewOf } from '../codec/index.js';
import { hardwarePath, readHardwareFile, writeHardwareFile } from './hardware.js';
import type { MachineRoot } from './root.js';

/**
 * The battery-backed real-time clock (the CMOS RTC of a PC): hardware
 * state outside RAM, in lib/machine/rtc. It goes on across power cycles,
 * resets and every kind of reboot, never backwards, so every boot and
 * every crash of a machine has its own time. It is changed only through
 * writeHardwareFile, so a step killed before it commits puts it back with
 * RAM, and a rerun of the step reads the same time.
 *
 * Simulated time passes only where the simulated kernel's clock advances
 * (src/kernel/rtc.ts says how the RTC follows it).
 */
export const RTC_FILE = 'rtc';

/**
 * What a new machine's RTC reads (2026-11-18 11:06:40 UTC): fixed, so a new
 * machine root boots at the same instant every time and a power-on with the
 * same seed on a fresh root gives the same RAM.
 */
export const RTC_EPOCH_SEC = 1795000000n;

/** "LKCDRTC\0", little-endian. */
export const RTC_MAGIC = 0x0043545244434b4cn;

/** lib/machine/rtc: the clock's time and a CRC32 of the bytes before it (as a CMOS checksum). */
export const rtc_state = defineStruct('rtc_state', {
  rtc_magic: u64,
  /** Seconds since the epoch. */
  rtc_sec: u64,
  rtc_nsec: u32,
  /** CRC32 of the bytes before it. */
  rtc_crc32: u32,
});

const NSEC_PER_SEC = 1_000_000_000;

/** A time of the RTC: seconds since the epoch and nanoseconds. */
export interface RtcTime { sec: bigint; nsec: number }

/** Negative, zero or positive as `a` is before, at or after `b`. */
export function compareRtcTime(a: RtcTime, b: RtcTime): number {
  return a.sec !== b.sec ? (a.sec < b.sec ? -1 : 1) : a.nsec - b.nsec;
}

function crcOf(bytes: Uint8Array): number {
  return zlib.crc32(bytes.subarray(0, rtc_state.offsetOf.rtc_crc32)) >>> 0;
}

/** Decodes lib/machine/rtc, checking its size, magic, CRC32 and nanoseconds; `file` names it in errors. */
export function decodeRtc(bytes: Uint8Array, file: string): RtcTime {
  const bad = (field: string, why: string): never => {
    throw new CorruptDumpError(`${file}: ${why}`, { file, struct: 'rtc_state', field });
  };
  if (bytes.length !== rtc_state.size) bad('rtc_magic', `${bytes.length} bytes, not an RTC (${rtc_state.size} bytes)`);
  const s = rtc_state.decode(viewOf(bytes));
  if (s.rtc_magic !== RTC_MAGIC) bad('rtc_magic', `not an RTC (magic ${hex(s.rtc_magic)})`);
  const crc = crcOf(bytes);
  if (s.rtc_crc32 !== crc) bad('rtc_crc32', `RTC checksum ${hex(BigInt(s.rtc_crc32))} does not match its bytes (${hex(BigInt(crc))})`);
  if (s.rtc_nsec >= NSEC_PER_SEC) bad('rtc_nsec', `rtc_nsec ${s.rtc_nsec} is not below one second`);
  return { sec: s.rtc_sec, nsec: s.rtc_nsec };
}

/** The bytes of lib/machine/rtc holding `t`. */
export function encodeRtc(t: RtcTime): Uint8Array {
  const b = rtc_state.toBytes({ rtc_magic: RTC_MAGIC, rtc_sec: t.sec, rtc_nsec: t.nsec, rtc_crc32: 0 });
  viewOf(b).setUint32(rtc_state.offsetOf.rtc_crc32, crcOf(b), true);
  return b;
}

/** The RTC's file, or null on a machine whose clock was never set (a new root). */
export function readRtcFile(root: MachineRoot): RtcTime | null {
  const raw = readHardwareFile(root, RTC_FILE);
  return raw === null ? null : decodeRtc(raw, hardwarePath(root, RTC_FILE));
}

/** What the RTC reads now: its time, or RTC_EPOCH_SEC on a new root. */
export function readRtc(root: MachineRoot): RtcTime {
  return readRtcFile(root) ?? { sec: RTC_EPOCH_SEC, nsec: 0 };
}

/**
 * Moves the RTC on to `t`, within the running step if there is one, and
 * returns its time after: a `t` before what it reads leaves it as it is
 * (the clock never goes backwards), and an unchanged clock is not written.
 */
export function advanceRtc(root: MachineRoot, t: RtcTime): RtcTime {
  if (t.sec < 0n || !Number.isInteger(t.nsec) || t.nsec < 0 || t.nsec >= NSEC_PER_SEC) {
    throw new CorruptDumpError(`RTC time ${t.sec}.${t.nsec} is not a time`, { file: path.join(root.machineDir, RTC_FILE), struct: 'rtc_state' });
  }
  const stored = readRtcFile(root);
  const now = stored ?? { sec: RTC_EPOCH_SEC, nsec: 0 };
  if (compareRtcTime(t, now) <= 0 && stored !== null) return now;
  const next = compareRtcTime(t, now) > 0 ? t : now;
  writeHardwareFile(root, RTC_FILE, encodeRtc(next));
  return next;
}
