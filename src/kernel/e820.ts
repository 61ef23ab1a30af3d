/**
 * The kernel's copy of the memory map (arch/x86/kernel/e820.c): taken from
 * what the boot loader handed over, printed as "BIOS-e820:", trimmed as
 * setup_arch() trims it, kept in e820_table for /proc/iomem and kexec.
 */
import { CorruptDumpError, hex } from '../codec/index.js';
import {
  E820_TYPE_RAM, E820_TYPE_RESERVED, e820TypeWord, PAGE_SIZE_N, VGA_HOLE_START, ONE_MIB, type E820Range,
} from '../machine/index.js';
import type { Kernel } from './kernel.js';
import { printk } from './printk.js';
import { E820_MAX_ENTRIES_SIM, e820_entry, e820_table } from './structs/e820.js';

function memRange(a: bigint, b: bigint): string {
  return `[mem 0x${a.toString(16).padStart(16, '0')}-0x${(b - 1n).toString(16).padStart(16, '0')}]`;
}

/** Sorted copy with the range [start, end) of type `from` changed to `to` (e820__range_update). */
export function e820Update(map: readonly E820Range[], start: bigint, end: bigint, from: number, to: number): E820Range[] {
  const out: E820Range[] = [];
  for (const r of map) {
    const rEnd = r.addr + r.size;
    if (r.type !== from || rEnd <= start || r.addr >= end) { out.push(r); continue; }
    const a = r.addr > start ? r.addr : start;
    const b = rEnd < end ? rEnd : end;
    if (r.addr < a) out.push({ addr: r.addr, size: a - r.addr, type: r.type });
    out.push({ addr: a, size: b - a, type: to });
    if (b < rEnd) out.push({ addr: b, size: rEnd - b, type: r.type });
  }
  return out.sort((x, y) => (x.addr < y.addr ? -1 : x.addr > y.addr ? 1 : 0));
}

/**
 * setup_arch()'s handling of the map: print it as handed over, reserve
 * page 0 (trim_bios_range), and store the result in e820_table.
 */
export function setupE820(kernel: Kernel, handed: readonly E820Range[]): E820Range[] {
  if (handed.length === 0 || handed.length > E820_MAX_ENTRIES_SIM) {
    throw new CorruptDumpError(`memory map of ${handed.length} entries (the kernel takes 1 to ${E820_MAX_ENTRIES_SIM})`, { struct: 'e820_table' });
  }
  printk(kernel, 'BIOS-provided physical RAM map:');
  for (const r of handed) printk(kernel, `BIOS-e820: ${memRange(r.addr, r.addr + r.size)} ${e820TypeWord(r.type)}`);
  printk(kernel, `e820: update ${memRange(0n, PAGE_SIZE_N)} usable ==> reserved`);
  printk(kernel, `e820: remove ${memRange(VGA_HOLE_START, ONE_MIB)} usable`);
  let map = e820Update(handed, 0n, PAGE_SIZE_N, E820_TYPE_RAM, E820_TYPE_RESERVED);
  map = map.filter((r) => !(r.type === E820_TYPE_RAM && r.addr >= VGA_HOLE_START && r.addr + r.size <= ONE_MIB));
  if (map.length > E820_MAX_ENTRIES_SIM) {
    throw new CorruptDumpError(`memory map of ${map.length} entries after trimming exceeds ${E820_MAX_ENTRIES_SIM}`, { struct: 'e820_table' });
  }
  const zero = e820_entry.zero();
  kernel.writeStruct(e820_table, 'e820_table', {
    nr_entries: map.length,
    entries: Array.from({ length: E820_MAX_ENTRIES_SIM }, (_, i) => (i < map.length ? { addr: map[i].addr, size: map[i].size, type: map[i].type } : zero)),
  });
  return map;
}

/** The kernel's e820_table, bounded by its capacity. */
export function readE820(kernel: Kernel): E820Range[] {
  const t = kernel.readStruct(e820_table, 'e820_table');
  if (t.nr_entries > E820_MAX_ENTRIES_SIM) {
    throw new CorruptDumpError(`e820_table.nr_entries ${t.nr_entries} exceeds its ${E820_MAX_ENTRIES_SIM} entries`, { struct: 'e820_table', field: 'nr_entries' });
  }
  return t.entries.slice(0, t.nr_entries).map((e) => ({ addr: e.addr, size: e.size, type: e.type }));
}

/** memblock_phys_mem_size(): bytes of usable RAM in the map. */
export function systemRamBytes(map: readonly E820Range[]): bigint {
  return map.filter((r) => r.type === E820_TYPE_RAM).reduce((s, r) => s + r.size, 0n);
}

export function describeE820(r: E820Range): string {
  return `${hex(r.addr)}+${hex(r.size)} ${e820TypeWord(r.type)}`;
}
