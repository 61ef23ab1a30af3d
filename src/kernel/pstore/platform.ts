import zlib from 'node:zlib';
import type { Kernel } from '../kernel.js';
import { logSymbolsOf, printk, readLogRecords, type LogRecord } from '../printk.js';
import { LOGLEVEL_ERR, LOGLEVEL_INFO } from '../constants.js';
import {
  DEFLATE_DEF_LEVEL, DEFLATE_DEF_MEMLEVEL, DEFLATE_DEF_WINBITS, KMSG_DUMP_MAX, KMSG_DUMP_OOPS, KMSG_DUMP_UNDEF,
  kmsgDumpReasonStr, type KmsgDumpReason,
} from './constants.js';
import { consoleLine, readPstoreState, writePstoreState } from './console.js';
import { readRamoops, ramoopsWriteDmesg } from './ramoops.js';
import { PSTORE_STATE_DMESG, PSTORE_STATE_REGISTERED } from './structs/pstore_state.js';

/** pstore.compress: what the core compresses dmesg records with. */
export type PstoreCompress = 'deflate' | 'none';
export const PSTORE_COMPRESS_NONE = 0;
export const PSTORE_COMPRESS_DEFLATE = 1;

/** Wall-clock time now (ktime_get_real_fast_ns), from the boot time and the kernel's clock. */
export function wallClock(kernel: Kernel): { sec: bigint; nsec: number } {
  const ns = kernel.readU64('sim_clock_ns');
  return { sec: kernel.readU64('sim_boot_time') + ns / 1_000_000_000n, nsec: Number(ns % 1_000_000_000n) };
}

/**
 * zbufsize_deflate(): how much log text one dump gathers before deflating
 * it into a record buffer of `size` bytes (an expected ratio per size).
 */
export function zbufsizeDeflate(size: number): number {
  let cmpr: number;
  if (size >= 1000 && size <= 2000) cmpr = 56;
  else if (size >= 2001 && size <= 3000) cmpr = 54;
  else if (size >= 3001 && size <= 3999) cmpr = 52;
  else if (size >= 4000 && size <= 10000) cmpr = 45;
  else cmpr = 60;
  return Math.floor((size * 100) / cmpr);
}

/**
 * crypto "deflate" (crypto/deflate.c): raw deflate with a 2 KiB window.
 * Null when the output does not fit in `outlen` bytes (-EINVAL upstream).
 */
export function deflateRecord(input: Uint8Array, outlen: number): Buffer | null {
  const out = zlib.deflateRawSync(input, { level: DEFLATE_DEF_LEVEL, windowBits: DEFLATE_DEF_WINBITS, memLevel: DEFLATE_DEF_MEMLEVEL });
  return out.length <= outlen ? out : null;
}

/** The matching inflate, limited to `outlen` bytes; null on any error (a cut or damaged record). */
export function inflateRecord(input: Uint8Array, outlen: number): Buffer | null {
  try {
    return zlib.inflateRawSync(input, { windowBits: DEFLATE_DEF_WINBITS, maxOutputLength: Math.max(1, outlen) });
  } catch {
    return null;
  }
}

/** A record as kmsg_dump_get_buffer(syslog=true) prints it: "<6>[    1.234567] text\n" (facility 0, the kernel's). */
export function syslogLine(r: LogRecord): string {
  return `<${r.level}>${consoleLine(r.ts_nsec, r.text)}`;
}

/**
 * kmsg_dump_get_buffer(syslog=true) for the first call of a dump: the
 * newest records whose text together fits in size - 1 bytes, oldest first.
 */
export function kmsgDumpGetBuffer(records: readonly LogRecord[], size: number): string {
  const lines = records.map(syslogLine);
  let total = 0;
  let first = lines.length;
  while (first > 0 && total + lines[first - 1].length <= size - 1) {
    total += lines[first - 1].length;
    first--;
  }
  return lines.slice(first).join('');
}

/**
 * pstore_register() for ramoops: the kmsg dumper when there are dmesg
 * zones, compression (psinfo->bufsize is the dmesg zone's buffer size), and
 * the console when there is a console zone. Prints what 6.1 prints.
 */
export function pstoreRegister(kernel: Kernel, opts: {
  compress: PstoreCompress; bufsize: number; dmesg: boolean; consoleLoglevel: number; alwaysKmsgDump: boolean;
  /** pstore_register_console(), when there is a console zone: runs before the "Registered" line, as in 6.1. */
  registerConsole?: () => void;
}): void {
  const s = readPstoreState(kernel);
  if (!s) return;
  const compress = opts.dmesg && opts.compress === 'deflate';
  if (compress) printk(kernel, 'pstore: Using crash dump compression: deflate', LOGLEVEL_INFO);
  writePstoreState(kernel, {
    ...s,
    flags: PSTORE_STATE_REGISTERED | (opts.dmesg ? PSTORE_STATE_DMESG : 0),
    compress: compress ? PSTORE_COMPRESS_DEFLATE : PSTORE_COMPRESS_NONE,
    oopscount: 0,
    bufsize: opts.bufsize,
    big_oops_buf_sz: compress ? zbufsizeDeflate(opts.bufsize) : 0,
    console_loglevel: opts.consoleLoglevel,
    always_kmsg_dump: opts.alwaysKmsgDump ? 1 : 0,
  });
  opts.registerConsole?.();
  printk(kernel, 'pstore: Registered ramoops as persistent store backend', LOGLEVEL_INFO);
}

/**
 * kmsg_dump(reason): the pstore dumper runs when the reason is within the
 * backend's max_reason (an unset max_reason means Oops, or everything with
 * printk.always_kmsg_dump). Returns the dmesg zone written, if any.
 */
export function kmsgDump(kernel: Kernel, reason: KmsgDumpReason): number | null {
  const s = readPstoreState(kernel);
  const cxt = readRamoops(kernel);
  if (!s || !cxt || !(s.flags & PSTORE_STATE_DMESG)) return null;
  let maxReason = cxt.max_reason;
  if (maxReason === KMSG_DUMP_UNDEF) maxReason = s.always_kmsg_dump ? KMSG_DUMP_MAX : KMSG_DUMP_OOPS;
  if (reason > maxReason) return null;
  return pstoreDump(kernel, reason);
}

/**
 * pstore_dump(), part 1 (ramoops keeps only the first part of a dump):
 * "Panic#N Part1\n" and the newest log lines that fit the buffer, deflated
 * into the record buffer when compression is on, else (or when deflate does
 * not fit) the newest bytes that fit uncompressed.
 */
function pstoreDump(kernel: Kernel, reason: KmsgDumpReason): number | null {
  const s = readPstoreState(kernel)!;
  const oopscount = s.oopscount + 1;
  writePstoreState(kernel, { ...s, oopscount });
  const compress = s.compress === PSTORE_COMPRESS_DEFLATE;
  const header = `${kmsgDumpReasonStr(reason)}#${oopscount} Part1\n`;
  const dstSize = (compress ? s.big_oops_buf_sz : s.bufsize) - header.length;
  const records = readLogRecords(kernel.mem, logSymbolsOf(kernel));
  const text = Buffer.from(header + kmsgDumpGetBuffer(records, dstSize), 'latin1');
  const time = wallClock(kernel);
  let data: Uint8Array = text;
  let compressed = false;
  if (compress) {
    const z = deflateRecord(text, s.bufsize);
    if (z) {
      data = z;
      compressed = true;
    } else {
      printk(kernel, 'pstore: crypto_comp_compress failed, ret = -22!', LOGLEVEL_ERR);
      // copy_kmsg_to_buffer(): the header, then the newest bytes that still fit.
      data = text.length > s.bufsize ? Buffer.concat([text.subarray(0, header.length), text.subarray(text.length - (s.bufsize - header.length))]) : text;
    }
  }
  const r = ramoopsWriteDmesg(kernel, { part: 1, timeSec: time.sec, timeNsec: time.nsec, compressed, data });
  return 'zone' in r ? r.zone : null;
}
