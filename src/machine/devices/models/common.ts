/**
 * What the device models share: their PCI configuration header, packet
 * buffers for payload memories, and a text log ring kept in device memory
 * (the firmware logs of the HBA and the NVMe controller).
 */
import { defineStruct, u32, viewOf } from '../../../codec/index.js';
import type { Prng } from '../../prng.js';
import type { PciDevice } from '../device.js';
import { PCI_BASE_ADDRESS_MEM_TYPE_64, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, pci_config_header } from '../pci.js';

/** PCI_STATUS_CAP_LIST: the function has a capability list. */
const PCI_STATUS_CAP_LIST = 0x10;

/** Writes the type-0 header of `dev`'s configuration space: ids, class, BAR0 (64-bit memory), command. */
export function fillConfigSpace(dev: PciDevice, classProg = 0): void {
  const id = dev.model.identity;
  const bar0 = dev.image.region('bar0').bus_addr;
  const cfg = dev.mem('config');
  cfg.fill(0);
  pci_config_header.encode({
    ...pci_config_header.zero(),
    vendor_id: id.vendor, device_id: id.device, command: PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, status: PCI_STATUS_CAP_LIST,
    revision_id: id.revision, class_prog: classProg || (id.classCode & 0xff), class_device: id.classCode >>> 8,
    header_type: 0, base_address: [Number(bar0 & 0xfffffff0n) | PCI_BASE_ADDRESS_MEM_TYPE_64, Number(bar0 >> 32n), 0, 0, 0, 0],
    subsystem_vendor_id: id.subsystemVendor, subsystem_id: id.subsystem, capability_list: 0x40, interrupt_pin: 1, interrupt_line: 11,
  }, viewOf(cfg), 0);
  dev.touch();
}

/** Packet buffers of 2 KiB: each holds one frame (an Ethernet/IPv4/TCP header and payload), the rest of the buffer zero. */
export function fillPackets(buf: Uint8Array, r: Prng): void {
  const BUF = 2048;
  buf.fill(0);
  for (let at = 0; at + BUF <= buf.length; at += BUF) {
    const len = 64 + r.below(1450);
    const frame = buf.subarray(at, at + len);
    // Destination and source MACs, EtherType IPv4, then an IPv4 header: version/IHL 0x45, total length, TTL 64, TCP.
    for (let i = 0; i < 12; i++) frame[i] = i < 6 ? 0x02 : r.below(256);
    frame[12] = 0x08; frame[13] = 0x00; frame[14] = 0x45;
    frame[16] = ((len - 14) >> 8) & 0xff; frame[17] = (len - 14) & 0xff;
    frame[22] = 64; frame[23] = 6;
    for (let i = 26; i < len; i += 4) {
      const w = r.u32();
      frame[i] = w & 0xff;
      if (i + 1 < len) frame[i + 1] = (w >>> 8) & 0xff;
      if (i + 2 < len) frame[i + 2] = (w >>> 16) & 0xff;
      if (i + 3 < len) frame[i + 3] = w >>> 24;
    }
  }
}

/**
 * A text log ring in device memory (ours): a 16-byte head, then the text.
 * The firmware appends lines at `head`, wrapping to the start of the text.
 */
export const sim_log_ring = defineStruct('sim_log_ring', {
  magic: u32,
  /** Offset of the next byte written, from the start of the text. */
  head: u32,
  /** 1 once the ring has wrapped. */
  wrapped: u32,
  /** Lines written since the ring was cleared. */
  lines: u32,
});
export const SIM_LOG_RING_MAGIC = 0x474f4c46; // "FLOG"

/** Clears a log ring. */
export function clearLogRing(ring: Uint8Array): void {
  ring.fill(0);
  sim_log_ring.encode({ magic: SIM_LOG_RING_MAGIC, head: 0, wrapped: 0, lines: 0 }, viewOf(ring), 0);
}

/** Appends one line to a log ring. */
export function writeText(ring: Uint8Array, line: string): void {
  const v = viewOf(ring);
  const h = sim_log_ring.decode(v, 0);
  const text = ring.subarray(sim_log_ring.size);
  const bytes = Buffer.from(`${line}\n`, 'latin1');
  let head = h.head % text.length;
  let wrapped = h.wrapped;
  for (const b of bytes) {
    text[head++] = b;
    if (head === text.length) { head = 0; wrapped = 1; }
  }
  sim_log_ring.encode({ magic: SIM_LOG_RING_MAGIC, head, wrapped, lines: h.lines + 1 }, v, 0);
}

/** "[   12.345678] " from an uptime in ns: firmware logs stamp lines as the kernel does. */
export function stamp(uptimeNs: bigint): string {
  const us = uptimeNs / 1000n;
  return `[${String(us / 1_000_000n).padStart(5, ' ')}.${String(us % 1_000_000n).padStart(6, '0')}]`;
}
