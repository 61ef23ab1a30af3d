/**
 * `machine lspci` and `machine device`: the machine's PCI functions as the
 * hardware shows them (lspci -Dnn style lines), and one device's raw state
 * (the image of src/machine/devices/image.ts) written out for tools and
 * tests.
 */
import { formatSize, hex } from '../codec/index.js';
import { PciBus, requireRunning, writeOutputFile, type MachineRoot, type PciDevice } from '../machine/index.js';

/** One function, as `lspci --json` gives it. */
export interface LspciEntry {
  bdf: string;
  vendor_id: string;
  device_id: string;
  class: string;
  revision: number;
  vendor: string;
  device: string;
  class_name: string;
  model: string;
  wedged: boolean;
  regions: Array<{ name: string; size: number; bus_addr: string }>;
}

function entryOf(d: PciDevice): LspciEntry {
  const id = d.model.identity;
  const h4 = (n: number): string => n.toString(16).padStart(4, '0');
  return {
    bdf: d.bdf, vendor_id: h4(id.vendor), device_id: h4(id.device), class: id.classCode.toString(16).padStart(6, '0'), revision: id.revision,
    vendor: id.vendorName, device: id.deviceName, class_name: id.className, model: d.model.name, wedged: d.wedged,
    regions: d.image.regions.map((r) => ({ name: r.name, size: Number(r.size), bus_addr: hex(r.bus_addr) })),
  };
}

/** The functions of the running machine, in bus order. */
export function lspci(root: MachineRoot): LspciEntry[] {
  requireRunning(root);
  return PciBus.open(root).devices().map(entryOf);
}

/** lspci -Dnn lines; a wedged function gets a second, indented line saying so. */
export function lspciText(entries: readonly LspciEntry[]): string {
  return entries.map((e) => {
    const line = `${e.bdf} ${e.class_name} [${e.class.slice(0, 4)}]: ${e.vendor} ${e.device} [${e.vendor_id}:${e.device_id}]${e.revision ? ` (rev ${e.revision.toString(16).padStart(2, '0')})` : ''}\n`;
    return e.wedged ? `${line}\tState: wedged: the function does not respond to its driver (a power cycle clears it)\n` : line;
  }).join('');
}

/** `machine device BDF`: the device's regions, one per line. */
export function deviceText(root: MachineRoot, bdf: string): string {
  requireRunning(root);
  const e = entryOf(PciBus.open(root).device(bdf));
  return lspciText([e]) + e.regions.map((r) => `\t${r.name.padEnd(8)} ${formatSize(BigInt(r.size)).padStart(8)} at ${r.bus_addr}\n`).join('');
}

/** `machine device BDF --dump -o FILE`: the device's image, as the hardware presents it now (0600, replaced whole). */
export function deviceDumpTo(root: MachineRoot, bdf: string, file: string): { file: string; bytes: number } {
  requireRunning(root);
  const dev = PciBus.open(root).device(bdf);
  dev.image.writeTables();
  const written = writeOutputFile(file, dev.image.bytes, root.outputProtected());
  return { file: written, bytes: dev.image.bytes.length };
}
