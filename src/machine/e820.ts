/**
 * The firmware's memory map (BIOS INT 15h E820, as a PC BIOS or QEMU's
 * SeaBIOS reports it): what the boot loader hands the kernel. Hardware
 * facts only; the kernel decides what to do with each range.
 */
import { PAGE_SIZE_N } from './constants.js';

/** E820 range types (arch/x86/include/asm/e820/types.h). */
export const E820_TYPE_RAM = 1;
export const E820_TYPE_RESERVED = 2;
export const E820_TYPE_ACPI = 3;
export const E820_TYPE_NVS = 4;
export const E820_TYPE_UNUSABLE = 5;

/** One range of the map: [addr, addr + size). */
export interface E820Range {
  addr: bigint;
  size: bigint;
  type: number;
}

/** End of conventional memory: the EBDA starts at 639 KiB on a PC (QEMU's SeaBIOS). */
export const EBDA_START = 0x9fc00n;
/** Legacy VGA and option ROM hole, not RAM. */
export const VGA_HOLE_START = 0xa0000n;
/** The system BIOS ROM shadow at the top of the first MiB. */
export const BIOS_ROM_START = 0xf0000n;
export const ONE_MIB = 0x100000n;

/**
 * The map the simulated firmware reports for `ramBytes` of RAM: the 639
 * KiB of conventional memory, the EBDA and BIOS ROM reserved, the VGA
 * hole left out, and all RAM above 1 MiB usable (SeaBIOS's layout).
 */
export function firmwareE820(ramBytes: bigint): E820Range[] {
  return [
    { addr: 0n, size: EBDA_START, type: E820_TYPE_RAM },
    { addr: EBDA_START, size: VGA_HOLE_START - EBDA_START, type: E820_TYPE_RESERVED },
    { addr: BIOS_ROM_START, size: ONE_MIB - BIOS_ROM_START, type: E820_TYPE_RESERVED },
    { addr: ONE_MIB, size: ramBytes - ONE_MIB, type: E820_TYPE_RAM },
  ];
}

/** The name e820_type_to_string() gives a type, as dmesg and /proc/iomem print it. */
export function e820TypeName(type: number): string {
  switch (type) {
    case E820_TYPE_RAM: return 'System RAM';
    case E820_TYPE_ACPI: return 'ACPI Tables';
    case E820_TYPE_NVS: return 'ACPI Non-volatile Storage';
    case E820_TYPE_UNUSABLE: return 'Unusable memory';
    default: return 'Reserved';
  }
}

/** The word e820__print_table() prints for a type. */
export function e820TypeWord(type: number): string {
  switch (type) {
    case E820_TYPE_RAM: return 'usable';
    case E820_TYPE_ACPI: return 'ACPI data';
    case E820_TYPE_NVS: return 'ACPI NVS';
    case E820_TYPE_UNUSABLE: return 'unusable';
    default: return 'reserved';
  }
}

/** Whole pages of the usable ranges, as [startPfn, endPfn) pairs (partial pages dropped, as the kernel does). */
export function usablePfnRanges(map: readonly E820Range[]): Array<[bigint, bigint]> {
  return map.filter((r) => r.type === E820_TYPE_RAM)
    .map((r) => [(r.addr + PAGE_SIZE_N - 1n) / PAGE_SIZE_N, (r.addr + r.size) / PAGE_SIZE_N] as [bigint, bigint])
    .filter(([s, e]) => e > s)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}
