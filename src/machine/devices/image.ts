/**
 * A PCI function's state as the hardware presents it, in one byte image:
 * a header, a table of regions (configuration space, the register BAR,
 * on-device memories), then each region's bytes. `machine device BDF --dump`
 * writes exactly this (the ground truth of device-dump tests); the machine
 * keeps the same image, deflated, as the device's hardware file.
 *
 *   simdev_image_header   64 bytes   magic "SIMPCIDV", version, address, ids, region count, flags
 *   simdev_region[n]      48 bytes each: name, offset in the image, size, type, flags, bus address
 *   region bytes          in table order, each at its offset (8-aligned)
 *
 * The format is this project's own (no real tool reads device state).
 */
import {
  bytes, CorruptDumpError, cstring, defineStruct, hex, u16, u32, u64, u8, viewOf, type ValueOf,
} from '../../codec/index.js';
import { pciDevfn, type PciAddress } from './pci.js';

export const SIMDEV_IMAGE_MAGIC = 'SIMPCIDV';
export const SIMDEV_IMAGE_VERSION = 1;

export const simdev_image_header = defineStruct('simdev_image_header', {
  magic: bytes(8),
  version: u32,
  header_size: u32,
  domain: u16,
  bus: u8,
  devfn: u8,
  vendor_id: u16,
  device_id: u16,
  nr_regions: u32,
  /** SIMDEV_F_* bits. */
  flags: u32,
  /** Bytes of the whole image, header included. */
  image_size: u64,
  /** The device model ("cxgb4-t6", "sas3008", "nvme-pm981"). */
  model: cstring(24),
});
export type SimdevImageHeader = ValueOf<typeof simdev_image_header>;

/** The device is wedged: it no longer answers its driver (set by the model, cleared by a power cycle). */
export const SIMDEV_F_WEDGED = 0x1;

export const simdev_region = defineStruct('simdev_region', {
  name: cstring(16),
  offset: u64,
  size: u64,
  /** SIMDEV_REGION_*. */
  type: u32,
  /** SIMDEV_REGION_F_*. */
  flags: u32,
  /** The BAR's bus address, or the memory's address inside the device. */
  bus_addr: u64,
});
export type SimdevRegion = ValueOf<typeof simdev_region>;

export const SIMDEV_REGION_CONFIG = 1;
export const SIMDEV_REGION_REGS = 2;
export const SIMDEV_REGION_MEM = 3;

/** Largest image a device may have (bounds every size read from a file). */
export const SIMDEV_IMAGE_MAX = 64 << 20;
/** Most regions a device may have. */
export const SIMDEV_MAX_REGIONS = 16;
const ALIGN = 8;

/** What a model declares for each region: its name, size, type, bus address, flags. */
export interface RegionSpec {
  name: string;
  size: number;
  type: number;
  busAddr: bigint;
  flags?: number;
}

/** A device's image in memory: the header, the regions, and their bytes. */
export class DeviceImage {
  constructor(readonly header: SimdevImageHeader, readonly regions: SimdevRegion[], readonly bytes: Uint8Array) {}

  /** A zero-filled image laid out for `specs`. */
  static layout(addr: PciAddress, ids: { vendor: number; device: number; model: string }, specs: readonly RegionSpec[]): DeviceImage {
    let at = simdev_image_header.size + specs.length * simdev_region.size;
    const regions: SimdevRegion[] = specs.map((s) => {
      at = Math.ceil(at / ALIGN) * ALIGN;
      const r = { name: s.name, offset: BigInt(at), size: BigInt(s.size), type: s.type, flags: s.flags ?? 0, bus_addr: s.busAddr };
      at += s.size;
      return r;
    });
    const size = Math.ceil(at / ALIGN) * ALIGN;
    const header: SimdevImageHeader = {
      magic: Buffer.from(SIMDEV_IMAGE_MAGIC, 'latin1'), version: SIMDEV_IMAGE_VERSION, header_size: simdev_image_header.size,
      domain: addr.domain, bus: addr.bus, devfn: pciDevfn(addr), vendor_id: ids.vendor, device_id: ids.device,
      nr_regions: regions.length, flags: 0, image_size: BigInt(size), model: ids.model,
    };
    const img = new DeviceImage(header, regions, new Uint8Array(size));
    img.writeTables();
    return img;
  }

  /** Writes the header and the region table into the image's first bytes. */
  writeTables(): void {
    const v = viewOf(this.bytes);
    simdev_image_header.encode(this.header, v, 0);
    this.regions.forEach((r, i) => simdev_region.encode(r, v, simdev_image_header.size + i * simdev_region.size));
  }

  /** Decodes and checks an image: magic, version, every region inside the image. */
  static decode(data: Uint8Array, what: string): DeviceImage {
    const bad = (why: string, field?: string): never => {
      throw new CorruptDumpError(`${what}: ${why}`, { struct: field ? 'simdev_image_header' : 'simdev_region', field });
    };
    if (data.length < simdev_image_header.size) bad(`${data.length} bytes is shorter than the image header`, 'magic');
    const v = viewOf(data);
    const h = simdev_image_header.decode(v, 0);
    if (Buffer.from(h.magic).toString('latin1') !== SIMDEV_IMAGE_MAGIC) bad('not a device image (bad magic)', 'magic');
    if (h.version !== SIMDEV_IMAGE_VERSION || h.header_size !== simdev_image_header.size) bad(`image version ${h.version} is not ours`, 'version');
    if (h.image_size !== BigInt(data.length)) bad(`image_size ${h.image_size} but ${data.length} bytes`, 'image_size');
    if (h.nr_regions === 0 || h.nr_regions > SIMDEV_MAX_REGIONS) bad(`nr_regions ${h.nr_regions}`, 'nr_regions');
    const tableEnd = simdev_image_header.size + h.nr_regions * simdev_region.size;
    if (tableEnd > data.length) bad(`the region table runs past the image`, 'nr_regions');
    const regions: SimdevRegion[] = [];
    for (let i = 0; i < h.nr_regions; i++) {
      const r = simdev_region.decode(v, simdev_image_header.size + i * simdev_region.size);
      if (r.offset < BigInt(tableEnd) || r.offset + r.size > BigInt(data.length)) bad(`region ${r.name} [${hex(r.offset)}, +${hex(r.size)}) is outside the image`);
      regions.push(r);
    }
    return new DeviceImage(h, regions, data);
  }

  region(name: string): SimdevRegion {
    const r = this.regions.find((x) => x.name === name);
    if (!r) throw new CorruptDumpError(`device image ${this.header.model}: no region '${name}'`, { struct: 'simdev_region', field: 'name' });
    return r;
  }

  /** The bytes of a region (a view into the image). */
  view(name: string): Uint8Array {
    const r = this.region(name);
    return this.bytes.subarray(Number(r.offset), Number(r.offset + r.size));
  }

  get wedged(): boolean {
    return (this.header.flags & SIMDEV_F_WEDGED) !== 0;
  }

  set wedged(on: boolean) {
    this.header.flags = on ? this.header.flags | SIMDEV_F_WEDGED : this.header.flags & ~SIMDEV_F_WEDGED;
    this.writeTables();
  }
}
