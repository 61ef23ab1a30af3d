/**
 * The crashkernel= reservation (kernel/crash_core.c parse_crashkernel,
 * arch/x86/kernel/setup.c reserve_crashkernel, v5.4): parsed from the
 * command line at boot, placed by a top-down memblock search below 4 GiB
 * (then above), recorded in crashk_res, and shown as "Crash kernel" in
 * /proc/iomem and as /sys/kernel/kexec_crash_size.
 */
import { hex } from '../codec/index.js';
import { PAGE_SIZE_N } from '../machine/index.js';
import type { PhysRange } from './boot_layout.js';
import { CRASH_ADDR_HIGH_MAX, CRASH_ADDR_LOW_MAX, CRASH_ALIGN, LOGLEVEL_INFO, LOGLEVEL_WARNING } from './constants.js';
import type { Kernel } from './kernel.js';
import { printk } from './printk.js';
import {
  IORES_DESC_CRASH_KERNEL, IORESOURCE_BUSY, IORESOURCE_MEM, IORESOURCE_SYSRAM, resource,
} from './structs/resource.js';

/** What parse_crashkernel() made of the command line. */
export type CrashkernelArg =
  | { kind: 'absent' }
  | { kind: 'invalid'; why: string }
  | { kind: 'unsupported'; why: string }
  | { kind: 'size'; size: bigint; base: bigint };

const SUFFIXES = [',high', ',low'];

/**
 * memparse(): a number (0x hex, leading-0 octal or decimal, as
 * simple_strtoull with base 0) and an optional K/M/G/T/P/E suffix.
 * Returns the value and how many characters it used (0: no number).
 */
export function memparse(text: string, at = 0): { value: bigint; end: number } {
  const m = /^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)([kKmMgGtTpPeE]?)/.exec(text.slice(at));
  if (!m) return { value: 0n, end: at };
  let digits = m[1];
  let value: bigint;
  if (/^0[xX]/.test(digits)) value = BigInt(digits);
  else if (digits.length > 1 && digits.startsWith('0')) { digits = digits.slice(1); value = BigInt(`0o${digits}`); }
  else value = BigInt(digits);
  const shift = { '': 0n, k: 10n, m: 20n, g: 30n, t: 40n, p: 50n, e: 60n }[m[2].toLowerCase() as '' | 'k'];
  return { value: value << shift, end: at + m[0].length };
}

/** The value of the last crashkernel= without a ,high or ,low suffix (get_last_crashkernel), or null. */
function lastCrashkernel(cmdline: string): { value: string; suffixed: boolean } | null {
  let found: { value: string; suffixed: boolean } | null = null;
  for (const word of cmdline.split(/\s+/)) {
    if (!word.startsWith('crashkernel=')) continue;
    const value = word.slice('crashkernel='.length);
    found = { value, suffixed: SUFFIXES.some((s) => value.endsWith(s)) };
  }
  return found;
}

/** parse_crashkernel_mem(): "start-[end]:size[,start-[end]:size...][@offset]" against the system RAM size. */
function parseRanges(text: string, systemRam: bigint): CrashkernelArg {
  let cur = 0;
  let size = 0n;
  for (;;) {
    const start = memparse(text, cur);
    if (start.end === cur) return { kind: 'invalid', why: 'Memory value expected' };
    cur = start.end;
    if (text[cur] !== '-') return { kind: 'invalid', why: "'-' expected" };
    cur++;
    let end: bigint | null = null;
    if (text[cur] !== ':') {
      const e = memparse(text, cur);
      if (e.end === cur) return { kind: 'invalid', why: 'Memory value expected' };
      cur = e.end;
      if (e.value <= start.value) return { kind: 'invalid', why: 'end <= start' };
      end = e.value;
    }
    if (text[cur] !== ':') return { kind: 'invalid', why: "':' expected" };
    cur++;
    const sz = memparse(text, cur);
    if (sz.end === cur) return { kind: 'invalid', why: 'Memory value expected' };
    cur = sz.end;
    if (sz.value >= systemRam) return { kind: 'invalid', why: 'invalid size' };
    if (systemRam >= start.value && (end === null || systemRam < end)) { size = sz.value; break; }
    if (text[cur] !== ',') break;
    cur++;
  }
  let base = 0n;
  if (size > 0n) {
    while (cur < text.length && text[cur] !== '@') cur++;
    if (text[cur] === '@') {
      const b = memparse(text, cur + 1);
      if (b.end === cur + 1) return { kind: 'invalid', why: "Memory value expected after '@'" };
      base = b.value;
    }
  }
  return { kind: 'size', size, base };
}

/** parse_crashkernel_simple(): "size[@offset]". */
function parseSimple(text: string): CrashkernelArg {
  const sz = memparse(text, 0);
  if (sz.end === 0) return { kind: 'invalid', why: 'memory value expected' };
  let base = 0n;
  if (text[sz.end] === '@') {
    const b = memparse(text, sz.end + 1);
    if (b.end === sz.end + 1) return { kind: 'invalid', why: "Memory value expected after '@'" };
    if (b.end !== text.length) return { kind: 'invalid', why: `unrecognized char: ${text[b.end]}` };
    base = b.value;
  } else if (sz.end !== text.length) {
    return { kind: 'invalid', why: `unrecognized char: ${text[sz.end]}` };
  }
  return { kind: 'size', size: sz.value, base };
}

/** parse_crashkernel(): the last crashkernel= on the command line, for a machine with `systemRam` bytes of RAM. */
export function parseCrashkernel(cmdline: string, systemRam: bigint): CrashkernelArg {
  const arg = lastCrashkernel(cmdline);
  if (!arg) return { kind: 'absent' };
  if (arg.suffixed) return { kind: 'unsupported', why: `crashkernel=${arg.value}: the ,high and ,low forms are not simulated` };
  const colon = arg.value.indexOf(':');
  return colon >= 0 ? parseRanges(arg.value, systemRam) : parseSimple(arg.value);
}

/**
 * memblock_find_in_range() top-down: the highest `align`-aligned base in
 * [lo, hi) where [base, base + size) lies in one free range, or null.
 */
export function findTopDown(free: readonly PhysRange[], size: bigint, lo: bigint, hi: bigint, align: bigint): bigint | null {
  const sorted = [...free].sort((a, b) => (a.start > b.start ? -1 : a.start < b.start ? 1 : 0));
  for (const r of sorted) {
    const start = r.start > lo ? r.start : lo;
    const end = r.end < hi ? r.end : hi;
    if (end - start < size) continue;
    const base = ((end - size) / align) * align;
    if (base >= start) return base;
  }
  return null;
}

const MiB = 1n << 20n;

/**
 * reserve_crashkernel(): finds the region crashkernel= asks for in the
 * memory still free this early (`free`), logs the outcome as 5.4 does,
 * and records it in crashk_res. A reservation that does not fit is
 * refused in the log and the boot goes on. Returns the range to reserve.
 */
export function reserveCrashkernel(kernel: Kernel, cmdline: string, systemRam: bigint, free: readonly PhysRange[]): PhysRange | null {
  kernel.writeStruct(resource, 'crashk_res', resource.zero());
  const arg = parseCrashkernel(cmdline, systemRam);
  if (arg.kind === 'absent') return null;
  if (arg.kind === 'invalid') {
    printk(kernel, `crashkernel: ${arg.why}`, LOGLEVEL_WARNING);
    return null;
  }
  if (arg.kind === 'unsupported') {
    printk(kernel, `crashkernel: ${arg.why}; no memory reserved`, LOGLEVEL_WARNING);
    return null;
  }
  if (arg.size === 0n) {
    printk(kernel, 'crashkernel size resulted in zero bytes', LOGLEVEL_INFO);
    return null;
  }
  const size = (arg.size + PAGE_SIZE_N - 1n) & ~(PAGE_SIZE_N - 1n);
  let base: bigint | null;
  if (arg.base === 0n) {
    base = findTopDown(free, size, CRASH_ALIGN, CRASH_ADDR_LOW_MAX, CRASH_ALIGN)
      ?? findTopDown(free, size, CRASH_ALIGN, CRASH_ADDR_HIGH_MAX, CRASH_ALIGN);
    if (base === null) {
      printk(kernel, 'crashkernel reservation failed - No suitable area found.', LOGLEVEL_INFO);
      return null;
    }
  } else {
    base = findTopDown(free, size, arg.base, arg.base + size, MiB);
    if (base !== arg.base) {
      printk(kernel, 'crashkernel reservation failed - memory is in use.', LOGLEVEL_INFO);
      return null;
    }
  }
  printk(kernel, `Reserving ${size / MiB}MB of memory at ${base / MiB}MB for crashkernel (System RAM: ${systemRam / MiB}MB)`, LOGLEVEL_INFO);
  kernel.writeStruct(resource, 'crashk_res', {
    ...resource.zero(), start: base, end: base + size - 1n,
    flags: IORESOURCE_MEM | IORESOURCE_BUSY | IORESOURCE_SYSRAM, desc: IORES_DESC_CRASH_KERNEL,
  });
  return { start: base, end: base + size };
}

/** The reserved crashkernel region ([start, end), end exclusive), or null when none is. */
export function crashkernelRegion(kernel: Kernel): PhysRange | null {
  const r = kernel.readStruct(resource, 'crashk_res');
  if (r.start === 0n && r.end === 0n) return null;
  return { start: r.start, end: r.end + 1n };
}

/** /sys/kernel/kexec_crash_size: crash_get_memory_size(), in bytes. */
export function kexecCrashSize(kernel: Kernel): bigint {
  const r = crashkernelRegion(kernel);
  return r ? r.end - r.start : 0n;
}

export function describeRegion(r: PhysRange): string {
  return `[${hex(r.start)}-${hex(r.end - 1n)}] (${(r.end - r.start) / MiB} MiB)`;
}
