/**
 * The machine's PCI bus: its functions, each kept in a hardware file
 * lib/machine/devices/<bdf> (state.ts) written through the hardware-file
 * API, so a command killed part-way puts every device back with RAM. The
 * files are kept by a warm reboot and a kexec, and removed at power-off
 * (the devices lose their state with power); a cold power-on makes them
 * anew from the machine's seed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CorruptDumpError, DumpError, ioError, UsageError, wrapError } from '../../codec/index.js';
import { readHardwareFile, removeHardwareFile, writeHardwareFile } from '../hardware.js';
import type { MachineRoot } from '../root.js';
import { PciDevice, type DeviceClock, type DeviceModel } from './device.js';
import { cxgb4Model } from './models/cxgb4.js';
import { mpt3sasModel } from './models/mpt3sas.js';
import { nvmeModel } from './models/nvme.js';
import { compareBdf, formatBdf, parseBdf, type PciAddress } from './pci.js';
import { decodeDeviceState, encodeDeviceState } from './state.js';

/** The directory of device files under lib/machine/. */
export const DEVICES_DIR = 'devices';
/** Most device files the bus reads (bounds a directory someone filled). */
const MAX_DEVICES = 32;

/** Every model the machine knows, by the name its image carries. */
export const DEVICE_MODELS: readonly DeviceModel[] = [cxgb4Model, mpt3sasModel, nvmeModel];

/** A slot of the machine's configuration: where a device sits and what it is. */
export interface DeviceSlot {
  bdf: string;
  model: DeviceModel;
  /** Short name for --devices: nic, hba, nvme. */
  role: string;
}

/** The machine's standard configuration, in bus order. */
export const STANDARD_DEVICES: readonly DeviceSlot[] = [
  { bdf: '0000:02:00.4', model: cxgb4Model, role: 'nic' },
  { bdf: '0000:03:00.0', model: mpt3sasModel, role: 'hba' },
  { bdf: '0000:04:00.0', model: nvmeModel, role: 'nvme' },
];

/** Parses --devices: "all" (the default), "none", or a comma list of roles (nic,hba,nvme). */
export function parseDeviceList(text: string): DeviceSlot[] {
  const t = text.trim();
  if (t === 'all') return [...STANDARD_DEVICES];
  if (t === 'none') return [];
  const roles = t.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const unknown = roles.filter((r) => !STANDARD_DEVICES.some((d) => d.role === r));
  if (unknown.length || roles.length === 0) {
    throw new UsageError(`--devices '${text}': expected all, none, or a list of ${STANDARD_DEVICES.map((d) => d.role).join(', ')}`);
  }
  return STANDARD_DEVICES.filter((d) => roles.includes(d.role));
}

function fileName(addr: PciAddress): string {
  return `${DEVICES_DIR}/${formatBdf(addr)}`;
}

function modelNamed(name: string, file: string): DeviceModel {
  const m = DEVICE_MODELS.find((x) => x.name === name);
  if (!m) throw new CorruptDumpError(`${file}: unknown device model '${name}'`, { file, struct: 'simdev_image_header', field: 'model' });
  return m;
}

/**
 * The bus as one command sees it: devices are loaded when first used and
 * written back by flush() (only those that changed).
 */
export class PciBus {
  private readonly loaded = new Map<string, PciDevice>();

  private constructor(readonly root: MachineRoot, private readonly addrs: PciAddress[]) {}

  /** The functions present: one per device file, in bus order. */
  static open(root: MachineRoot): PciBus {
    const dir = path.join(root.machineDir, DEVICES_DIR);
    let names: string[] = [];
    try {
      if (fs.existsSync(dir)) names = fs.readdirSync(dir).filter((n) => !n.startsWith('.')).slice(0, MAX_DEVICES + 1);
    } catch (e) {
      throw ioError(`listing ${dir}`, e as NodeJS.ErrnoException);
    }
    if (names.length > MAX_DEVICES) throw new CorruptDumpError(`${dir}: more than ${MAX_DEVICES} device files`, { file: dir });
    const addrs = names.map((n) => {
      try {
        return parseBdf(n);
      } catch {
        throw new CorruptDumpError(`${path.join(dir, n)}: not a device file (its name is not a PCI address)`, { file: path.join(dir, n) });
      }
    }).sort(compareBdf);
    return new PciBus(root, addrs);
  }

  /** Addresses of the functions present, in bus order. */
  addresses(): PciAddress[] {
    return [...this.addrs];
  }

  has(bdf: string): boolean {
    const a = parseBdf(bdf);
    return this.addrs.some((x) => compareBdf(x, a) === 0);
  }

  /** The device at `bdf` (a NOINPUT error naming the address when there is none). */
  device(bdf: string | PciAddress): PciDevice {
    const addr = typeof bdf === 'string' ? parseBdf(bdf) : bdf;
    const key = formatBdf(addr);
    const cached = this.loaded.get(key);
    if (cached) return cached;
    if (!this.addrs.some((x) => compareBdf(x, addr) === 0)) throw new DumpError('NOINPUT', `no PCI device at ${key} (machine lspci lists them)`);
    const name = fileName(addr);
    const file = path.join(this.root.machineDir, name);
    const raw = readHardwareFile(this.root, name);
    if (raw === null) throw new DumpError('NOINPUT', `no PCI device at ${key}`, { file });
    try {
      const { state, image } = decodeDeviceState(raw, file);
      const model = modelNamed(image.header.model, file);
      const dev = new PciDevice(addr, model, image, state.seed, state.generation);
      model.fillPayload(dev);
      dev.dirty = false;
      this.loaded.set(key, dev);
      return dev;
    } catch (e) {
      throw wrapError(`PCI device ${key}`, e);
    }
  }

  /** Every device, loaded, in bus order. */
  devices(): PciDevice[] {
    return this.addrs.map((a) => this.device(a));
  }

  /** Writes back every device that changed (within the running step, if any). */
  flush(): void {
    for (const dev of this.loaded.values()) {
      if (!dev.dirty) continue;
      writeHardwareFile(this.root, fileName(dev.addr), encodeDeviceState(dev.image, dev.seed, dev.generation, dev.model.payloadRanges(dev)));
      dev.dirty = false;
    }
  }

  /** Power-off: every device loses its state (its file goes). */
  static clear(root: MachineRoot): void {
    for (const a of PciBus.open(root).addrs) removeHardwareFile(root, fileName(a));
  }

  /**
   * Cold power-on: the devices of `slots` come up fresh, each from a seed
   * derived from the machine's; devices not in `slots` are removed.
   */
  static powerOn(root: MachineRoot, slots: readonly DeviceSlot[], seed: number, now: DeviceClock): PciBus {
    PciBus.clear(root);
    const bus = new PciBus(root, slots.map((s) => parseBdf(s.bdf)).sort(compareBdf));
    for (const s of slots) {
      const addr = parseBdf(s.bdf);
      const dev = PciDevice.create(addr, s.model, (seed ^ Math.imul(addr.bus * 256 + addr.device * 8 + addr.fn + 1, 0x2c1b3c6d)) >>> 0);
      s.model.powerOn(dev, now);
      bus.loaded.set(formatBdf(addr), dev);
    }
    bus.flush();
    return bus;
  }

  /** `seconds` of traffic through every device. */
  run(seconds: number, now: DeviceClock): void {
    for (const dev of this.devices()) dev.model.run(dev, seconds, now);
  }

  /**
   * A platform reset of PCI (PERST#, as firmware does before restarting the
   * OS): every device comes up as at power-on, with the same seed; what it
   * held at the crash is gone.
   */
  resetAll(now: DeviceClock): void {
    for (const old of this.devices()) {
      const dev = PciDevice.create(old.addr, old.model, old.seed);
      old.model.powerOn(dev, now);
      this.loaded.set(formatBdf(old.addr), dev);
    }
    this.flush();
  }

  /** The host crashed: each device reacts on its own. */
  hostCrash(now: DeviceClock): void {
    for (const dev of this.devices()) dev.model.hostCrash(dev, now);
  }
}
