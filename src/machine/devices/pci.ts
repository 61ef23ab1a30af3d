/**
 * PCI addressing and the type-0 configuration header (PCI Local Bus
 * Specification 3.0, section 6.1; offsets as include/uapi/linux/pci_regs.h
 * names them). A function's address is domain:bus:device.function, written
 * as lspci and sysfs write it: "0000:02:00.4".
 */
import { array, bytes, defineStruct, u16, u32, u8, UsageError, type ValueOf } from '../../codec/index.js';

export interface PciAddress {
  domain: number;
  bus: number;
  device: number;
  fn: number;
}

/** Largest bus, device and function numbers (8, 5 and 3 bits). */
const MAX_BUS = 0xff;
const MAX_DEVICE = 0x1f;
const MAX_FN = 0x7;

/** "0000:02:00.4" (pci_name()). */
export function formatBdf(a: PciAddress): string {
  const h = (n: number, w: number): string => n.toString(16).padStart(w, '0');
  return `${h(a.domain, 4)}:${h(a.bus, 2)}:${h(a.device, 2)}.${a.fn}`;
}

/** Parses "0000:02:00.4" or "02:00.4" (domain 0), as lspci -s takes them; a bad address is one usage line. */
export function parseBdf(text: string): PciAddress {
  const m = /^(?:([0-9a-f]{1,4}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$/i.exec(text.trim());
  if (!m) throw new UsageError(`'${text}' is not a PCI address (DOMAIN:BUS:DEVICE.FUNCTION, e.g. 0000:02:00.4)`);
  const a = { domain: m[1] ? parseInt(m[1], 16) : 0, bus: parseInt(m[2], 16), device: parseInt(m[3], 16), fn: Number(m[4]) };
  if (a.bus > MAX_BUS || a.device > MAX_DEVICE || a.fn > MAX_FN) throw new UsageError(`'${text}': device ${a.device} is above ${MAX_DEVICE}`);
  return a;
}

/** devfn as the kernel packs it (PCI_DEVFN). */
export function pciDevfn(a: PciAddress): number {
  return ((a.device & MAX_DEVICE) << 3) | (a.fn & MAX_FN);
}

/** Orders addresses as a bus scan finds them. */
export function compareBdf(a: PciAddress, b: PciAddress): number {
  return a.domain - b.domain || a.bus - b.bus || a.device - b.device || a.fn - b.fn;
}

/** Bytes of configuration space a conventional PCI function has. */
export const PCI_CFG_SPACE_SIZE = 256;

/** The type-0 header: the first 64 bytes of configuration space. */
export const pci_config_header = defineStruct('pci_config_header', {
  vendor_id: u16,            // PCI_VENDOR_ID 0x00
  device_id: u16,            // PCI_DEVICE_ID 0x02
  command: u16,              // PCI_COMMAND 0x04
  status: u16,               // PCI_STATUS 0x06
  revision_id: u8,           // PCI_CLASS_REVISION 0x08
  class_prog: u8,            // PCI_CLASS_PROG 0x09
  class_device: u16,         // PCI_CLASS_DEVICE 0x0a: base class << 8 | subclass
  cache_line_size: u8,       // 0x0c
  latency_timer: u8,         // 0x0d
  header_type: u8,           // 0x0e
  bist: u8,                  // 0x0f
  base_address: array(u32, 6), // PCI_BASE_ADDRESS_0..5 0x10
  cardbus_cis: u32,          // 0x28
  subsystem_vendor_id: u16,  // 0x2c
  subsystem_id: u16,         // 0x2e
  rom_address: u32,          // 0x30
  capability_list: u8,       // 0x34
  _reserved: bytes(7),
  interrupt_line: u8,        // 0x3c
  interrupt_pin: u8,         // 0x3d
  min_gnt: u8,
  max_lat: u8,
});
export type PciConfigHeader = ValueOf<typeof pci_config_header>;

/** PCI_COMMAND bits. */
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
/** PCI_BASE_ADDRESS_MEM_TYPE_64: a 64-bit memory BAR (it takes two slots). */
export const PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x04;
