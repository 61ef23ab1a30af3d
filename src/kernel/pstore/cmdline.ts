import { hex } from '../../codec/index.js';
import { memparse } from '../crashkernel.js';
import type { PhysRange } from '../boot_layout.js';

/**
 * The kernel command line as parse_args() splits it: whitespace-separated
 * words, "name=value" or a bare "name", double quotes around a value with
 * spaces. Later occurrences of a name win, as they do for module
 * parameters; `all` keeps every occurrence in order (memmap= may repeat).
 */
export interface KernelParams {
  get(name: string): string | undefined;
  has(name: string): boolean;
  all(name: string): string[];
  /** Every word, in order. */
  readonly words: readonly string[];
}

export function parseKernelParams(cmdline: string): KernelParams {
  const words = cmdline.match(/(?:[^\s"]+|"[^"]*")+/g) ?? [];
  const pairs = words.map((w): [string, string | undefined] => {
    const eq = w.indexOf('=');
    const name = (eq < 0 ? w : w.slice(0, eq)).replace(/-/g, '_');
    const value = eq < 0 ? undefined : w.slice(eq + 1).replace(/^"(.*)"$/s, '$1');
    return [name, value];
  });
  return {
    words,
    get: (name) => {
      for (let i = pairs.length - 1; i >= 0; i--) if (pairs[i][0] === name) return pairs[i][1] ?? '';
      return undefined;
    },
    has: (name) => pairs.some(([n]) => n === name),
    all: (name) => pairs.filter(([n]) => n === name).map(([, v]) => v ?? ''),
  };
}

/**
 * kstrtoul/kstrtoull with base 0, as module parameters of type ulong and
 * ullong are parsed: decimal, 0x hex or leading-0 octal, no size suffix.
 * Null when the text is not such a number.
 */
export function kstrtoull(text: string): bigint | null {
  const t = text.trim();
  let v: bigint;
  if (/^0x[0-9a-f]+$/i.test(t)) v = BigInt(t);
  else if (/^0[0-7]*$/.test(t)) v = t.length > 1 ? BigInt(`0o${t.slice(1)}`) : 0n;
  else if (/^[1-9][0-9]*$/.test(t)) v = BigInt(t);
  else return null;
  return v < 1n << 64n ? v : null;
}

/** kstrtoint with base 0 (an int module parameter): null when not a number in range. */
export function kstrtoint(text: string): number | null {
  const neg = text.trim().startsWith('-');
  const v = kstrtoull(neg ? text.trim().slice(1) : text);
  if (v === null) return null;
  const s = neg ? -v : v;
  return s >= -(1n << 31n) && s < 1n << 31n ? Number(s) : null;
}

/** The kernel's memparse() (src/kernel/crashkernel.ts), and what is left of the text after it; null: no number. */
function memparseRest(text: string): { value: bigint; rest: string } | null {
  const r = memparse(text, 0);
  return r.end === 0 ? null : { value: r.value, rest: text.slice(r.end) };
}

/** One memmap=nn$ss range (E820_TYPE_RESERVED), or why the word was not one. */
export type MemmapEntry = { ok: true; range: PhysRange; text: string } | { ok: false; text: string; why: string };

/**
 * The memmap=nn[KMG]$ss[KMG] words of a command line (arch/x86/kernel/e820.c
 * parse_memmap_one): each marks [ss, ss+nn) reserved, so the allocator never
 * hands it out. The other memmap= forms (@ usable, # ACPI, ! pmem, exactmap)
 * do not reserve anything here and are reported as not understood.
 */
export function parseMemmap(params: KernelParams): MemmapEntry[] {
  const out: MemmapEntry[] = [];
  for (const v of params.all('memmap')) {
    for (const text of v.split(',')) {
      const size = memparseRest(text);
      if (!size || size.rest[0] !== '$') {
        out.push({ ok: false, text, why: 'only memmap=nn$ss (reserve) is supported' });
        continue;
      }
      const start = memparseRest(size.rest.slice(1));
      if (!start || start.rest !== '' || size.value === 0n) {
        out.push({ ok: false, text, why: 'not a size and an address' });
        continue;
      }
      out.push({ ok: true, text, range: { start: start.value, end: start.value + size.value } });
    }
  }
  return out;
}

/** memmap=SIZE$ADDR text for a range, in KiB when exact (as the kernel prints sizes back). */
export function memmapText(r: PhysRange): string {
  const size = r.end - r.start;
  const k = (v: bigint): string => (v % 1024n === 0n ? `${v / 1024n}K` : hex(v));
  return `memmap=${k(size)}$${k(r.start)}`;
}

/** reboot= (kernel/reboot.c): 'w'arm keeps RAM across the firmware restart; the default is cold. */
export function rebootMode(params: KernelParams): 'warm' | 'cold' {
  const v = params.get('reboot');
  if (v === undefined) return 'cold';
  // reboot= takes a comma list of single-letter-significant words; the last w or c wins.
  let mode: 'warm' | 'cold' = 'cold';
  for (const w of v.split(',')) {
    if (w.startsWith('w')) mode = 'warm';
    else if (w.startsWith('c')) mode = 'cold';
  }
  return mode;
}

/** console_loglevel after "quiet", "debug" and "loglevel=" (init/main.c). */
export function consoleLoglevel(params: KernelParams, fallback: number, quiet: number): number {
  let level = fallback;
  for (const w of params.words) {
    if (w === 'quiet') level = quiet;
    else if (w === 'debug') level = 10;
    else if (w.startsWith('loglevel=')) {
      const v = kstrtoint(w.slice('loglevel='.length));
      if (v !== null) level = v;
    }
  }
  return level;
}

/** Parameters that describe persistent RAM and must reach every kernel that boots on it. */
const PERSISTENT_RAM_PARAM = /^(ramoops\.|pstore\.|memmap=|reboot=|printk\.always_kmsg_dump)/;

/**
 * The command line for a kernel booted on warm RAM (a kexec soft boot, as
 * `lkcd config` preloads it): `target`, plus every ramoops.*, pstore.*,
 * memmap=, reboot= and printk.always_kmsg_dump word of the running kernel's
 * command line that `target` does not set itself. Without them the next
 * kernel would neither reserve the ramoops region nor read it.
 */
export function inheritPersistentRamParams(target: string, running: string): string {
  const have = parseKernelParams(target);
  const extra = parseKernelParams(running).words.filter((w) => {
    if (!PERSISTENT_RAM_PARAM.test(w)) return false;
    const name = (w.includes('=') ? w.slice(0, w.indexOf('=')) : w).replace(/-/g, '_');
    // memmap= may repeat: carry each range the target lacks.
    return name === 'memmap' ? !have.words.includes(w) : !have.has(name);
  });
  return [target.trim(), ...extra].filter((s) => s !== '').join(' ');
}

/**
 * A ramoops set-up for a machine of `ramBytes`, as a command-line tail: a
 * region of 1 MiB (256 KiB under 64 MiB) at 7/8 of RAM, 16 KiB dmesg
 * records, a 64 KiB console, the module defaults for ftrace and pmsg, a
 * 64 KiB devcoredump zone after it (ours), the memmap= that reserves both,
 * and reboot=warm so a firmware restart keeps them.
 */
export function defaultPstoreParams(ramBytes: bigint): string {
  const MiB = 1n << 20n;
  const size = ramBytes >= 64n * MiB ? MiB : 256n * 1024n;
  const devcd = 64n * 1024n;
  const addr = ((ramBytes * 7n) / 8n / MiB) * MiB;
  return [
    'reboot=warm', memmapText({ start: addr, end: addr + size + devcd }),
    `ramoops.mem_address=${hex(addr)}`, `ramoops.mem_size=${hex(size)}`, 'ramoops.record_size=0x4000',
    'ramoops.console_size=0x10000', `ramoops.devcoredump_size=${hex(devcd)}`,
  ].join(' ');
}
