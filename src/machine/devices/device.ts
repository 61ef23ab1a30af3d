/**
 * One PCI function of the machine, loaded from its hardware file: its
 * image (configuration space, register BAR, on-device memories) and the
 * model that gives the hardware its behaviour (what a register write does,
 * what traffic and a host crash change). Drivers and the workload reach
 * the device only through its registers and memories, as through a BAR.
 */
import { InternalError, hex } from '../../codec/index.js';
import { Prng } from '../prng.js';
import { DeviceImage, type RegionSpec } from './image.js';
import { formatBdf, type PciAddress } from './pci.js';

/** A byte range of a region the model regenerates instead of keeping (packet payload). */
export interface PayloadRange {
  region: string;
  offset: number;
  size: number;
}

/** What lspci says about a function. */
export interface PciIdentity {
  vendor: number;
  device: number;
  revision: number;
  /** Base class, subclass, programming interface: 0x020000 is an Ethernet controller. */
  classCode: number;
  subsystemVendor: number;
  subsystem: number;
  vendorName: string;
  deviceName: string;
  className: string;
}

/** The hardware behaviour of one kind of device. */
export interface DeviceModel {
  /** The model's name, kept in the image header ("cxgb4-t6"). */
  readonly name: string;
  readonly identity: PciIdentity;
  /** The regions of its image. */
  regions(): RegionSpec[];
  /** Cold power-on: the state the device comes up in. */
  powerOn(dev: PciDevice, now: DeviceClock): void;
  /** Ranges regenerated from the seed and the traffic generation (not kept in the hardware file). */
  payloadRanges(dev: PciDevice): PayloadRange[];
  /** Fills the payload ranges for the device's current generation. */
  fillPayload(dev: PciDevice): void;
  /** A 32-bit register write by the host, with its side effects. */
  writeReg(dev: PciDevice, offset: number, value: number, now: DeviceClock): void;
  /** `seconds` of traffic while the machine runs. */
  run(dev: PciDevice, seconds: number, now: DeviceClock): void;
  /** The host crashed: what the device does on its own (a watchdog, a firmware assert). */
  hostCrash(dev: PciDevice, now: DeviceClock): void;
}

/** The time the device sees: the host's uptime (ns) when the host touches it. */
export interface DeviceClock {
  uptimeNs: bigint;
}

/** One PCI function: address, model, image, and the seed and traffic generation its payload derives from. */
export class PciDevice {
  /** Set by every change: the bus writes back only what changed. */
  dirty = false;

  constructor(
    readonly addr: PciAddress,
    readonly model: DeviceModel,
    readonly image: DeviceImage,
    public seed: number,
    public generation: number,
  ) {}

  /** A new device as it leaves the factory: its image laid out, zero-filled. */
  static create(addr: PciAddress, model: DeviceModel, seed: number): PciDevice {
    const id = model.identity;
    const img = DeviceImage.layout(addr, { vendor: id.vendor, device: id.device, model: model.name }, model.regions());
    const dev = new PciDevice(addr, model, img, seed >>> 0, 0);
    dev.dirty = true;
    return dev;
  }

  get bdf(): string {
    return formatBdf(this.addr);
  }

  get wedged(): boolean {
    return this.image.wedged;
  }

  setWedged(on: boolean): void {
    this.image.wedged = on;
    this.dirty = true;
  }

  /** A region's bytes: reads see the device now; writes through it must call touch(). */
  mem(region: string): Uint8Array {
    return this.image.view(region);
  }

  /** Marks the device changed (after writing into mem()). */
  touch(): void {
    this.dirty = true;
  }

  private regView(): DataView {
    const b = this.image.view('bar0');
    return new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  private checkReg(offset: number, width: number): void {
    const size = this.image.view('bar0').length;
    if (offset < 0 || offset % width !== 0 || offset + width > size) {
      throw new InternalError(`${this.bdf}: register access at ${hex(offset)} (${width} bytes) is outside BAR0 (${size} bytes)`);
    }
  }

  /** A 32-bit register as the device holds it (no side effect: MMIO reads of these devices have none). */
  readReg32(offset: number): number {
    this.checkReg(offset, 4);
    return this.regView().getUint32(offset, true);
  }

  readReg64(offset: number): bigint {
    this.checkReg(offset, 8);
    return this.regView().getBigUint64(offset, true);
  }

  /** A host write to a register: the model decides what it does. */
  writeReg32(offset: number, value: number, now: DeviceClock): void {
    this.checkReg(offset, 4);
    this.model.writeReg(this, offset, value >>> 0, now);
    this.dirty = true;
  }

  /** Sets a register's value from the device side (the model's own updates). */
  setReg32(offset: number, value: number): void {
    this.checkReg(offset, 4);
    this.regView().setUint32(offset, value >>> 0, true);
    this.dirty = true;
  }

  setReg64(offset: number, value: bigint): void {
    this.checkReg(offset, 8);
    this.regView().setBigUint64(offset, BigInt.asUintN(64, value), true);
    this.dirty = true;
  }

  /** A generator for one purpose, deterministic for the device's seed, generation and `salt`. */
  rng(salt: number): Prng {
    return new Prng((this.seed ^ Math.imul(this.generation + 1, 0x9e3779b1) ^ Math.imul(salt, 0x85ebca6b)) >>> 0);
  }
}
